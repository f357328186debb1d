"""Keep-alive latency of the real ``python -m api`` against a stub server, in the same test.

A server that writes a response's head and body separately, on a socket without TCP_NODELAY,
waits for the client's delayed ACK before the body leaves: ~40 ms per keep-alive request on
loopback, whatever the route. That stall came back once unnoticed (the port is bound before
uvicorn starts, so asyncio no longer set the option). The stub answers a constant body in the
same two writes with TCP_NODELAY set; the ratio is loose (the API does real work, the machine
is shared), but a 40 ms stall is 100x and more.
"""

import http.client
import statistics
import subprocess
import sys
import textwrap
import time

from tests.integration.api.test_cli import ROOT, env_for, free_port, wait_for_line, wait_http

ROUNDS = 150
MAX_RATIO = 10.0

STUB = textwrap.dedent(
    """
    import asyncio, socket, sys

    BODY = b'{"status":"ok","data_as_of":"2024-04-02T05:58:01Z"}'
    HEAD = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
            b"content-length: %d\\r\\n\\r\\n" % len(BODY))

    async def serve(reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                await reader.readuntil(b"\\r\\n\\r\\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(HEAD)  # head and body in two writes, as uvicorn does
            await asyncio.sleep(0)
            writer.write(BODY)
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
        print("stub up", flush=True)
        await server.serve_forever()

    asyncio.run(main())
    """
)


def timed_get(conn, path, headers):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    assert resp.status == 200, body
    return elapsed


def test_keep_alive_requests_do_not_wait_for_delayed_acks(tmp_path, api_it_tools):
    from api.fake_marts import write_build

    # Given the real server over a small build, and a stub on the same machine
    write_build(tmp_path, api_it_tools.make_dataset(seed=9))
    api_port, stub_port = free_port(), free_port()
    key = "latency-key"
    api = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(api_port), "--no-access-log"],
        cwd=ROOT,
        env=env_for(tmp_path, DUFF_API_KEY=key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stub = subprocess.Popen(
        [sys.executable, "-c", STUB, str(stub_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_for_line(stub, "stub up")
        assert wait_http(f"http://127.0.0.1:{api_port}/health")[0] == 200
        api_conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
        stub_conn = http.client.HTTPConnection("127.0.0.1", stub_port, timeout=10)
        headers = {"x-api-key": key}
        for _ in range(10):  # warm up both (connections, the API's cache)
            timed_get(api_conn, "/products", headers)
            timed_get(stub_conn, "/health", {})
        # When each answers ROUNDS keep-alive requests, interleaved so load hits both alike
        api_times, stub_times = [], []
        for _ in range(ROUNDS):
            api_times.append(timed_get(api_conn, "/products", headers))
            stub_times.append(timed_get(stub_conn, "/health", {}))
        api_conn.close()
        stub_conn.close()
    finally:
        api.terminate()
        stub.terminate()
        api.wait(timeout=15)
        stub.wait(timeout=15)
    # Then the API's median stays within a loose ratio of the stub's (a stall is 40 ms)
    api_p50, stub_p50 = statistics.median(api_times), statistics.median(stub_times)
    shown = f"api p50 {api_p50 * 1000:.2f} ms, stub p50 {stub_p50 * 1000:.2f} ms"
    print(shown)
    assert api_p50 <= MAX_RATIO * stub_p50, shown
