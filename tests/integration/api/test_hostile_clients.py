"""``python -m api`` against hostile clients, over raw sockets (CONTRACT.md section 4: JSON
errors everywhere, never a 5xx for anything a client sends).

One real server for the module, with short deadlines (DUFF_API_IDLE_TIMEOUT=1,
DUFF_API_REQUEST_TIMEOUT=1.5) and its log captured.
"""

import json
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.api.test_cli import ROOT, env_for, free_port, wait_http

KEY = "hostile-key-31"
IDLE, REQUEST = 1.0, 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory, api_it_tools):
    from tests.support.fake_marts import write_build

    lake = tmp_path_factory.mktemp("hostile-lake")
    write_build(lake, api_it_tools.make_dataset(seed=13), build_id="hostile-build")
    port = free_port()
    log_path = lake / "server.log"
    env = env_for(
        lake,
        DUFF_API_KEY=KEY,
        DUFF_API_IDLE_TIMEOUT=str(IDLE),
        DUFF_API_REQUEST_TIMEOUT=str(REQUEST),
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", str(port), "--log-format", "text"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/health")[0] == 200
        yield {"port": port, "pid": proc.pid, "log": log_path}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """A response head's status and headers (lower-case names; none twice)."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        assert name.lower() not in headers, f"header {name} twice"
        headers[name.lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response: status, headers (lower-case names), body (by content-length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response head: {buf!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status, headers = parse_head(head)
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(raw)
        return read_response(sock)


def assert_json_error(response, status: int, code: str) -> None:
    got, headers, body = response
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    while True:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except ConnectionResetError:
            return time.monotonic() - started
        except TimeoutError:
            raise AssertionError(f"still open after {seconds} s") from None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_128_mb_header_is_refused_fast_in_bounded_memory(server):
    # Given the server's peak memory so far, and a client that sends /health a 128 MB header
    port = server["port"]
    before = peak_rss_mb(server["pid"])
    chunk = b"a" * 65536
    started = time.monotonic()
    sent = 0
    response = None
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 128 * 1024 * 1024:
                # When it keeps sending while the server has not answered
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_response(sock)
    elapsed = time.monotonic() - started
    # Then a JSON 431, quickly, long before the whole header, and the server's peak memory
    # did not grow with it
    assert_json_error(response, 431, "header_too_large")
    assert elapsed < 5, elapsed
    assert sent < 16 * 1024 * 1024, sent
    assert peak_rss_mb(server["pid"]) - before < 16
    # and the server still answers others
    assert exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_many_small_headers_are_bounded_too(server):
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n"
    assert_json_error(exchange(server["port"], head), 431, "header_too_large")


def test_a_large_body_is_refused(server):
    raw = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000
    assert_json_error(exchange(server["port"], raw), 413, "body_too_large")


def test_an_idle_connection_is_closed(server):
    # Given a client that connects and sends nothing / Then the server closes it after IDLE
    with connect(server["port"]) as sock:
        waited = closed_within(sock, IDLE + 5)
    assert waited >= IDLE * 0.8


def test_an_idle_keep_alive_connection_is_closed(server):
    with connect(server["port"]) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        closed_within(sock, IDLE + 5)


def test_a_slow_half_sent_request_gets_408_and_is_closed(server):
    # Given a client that sends a request head one header every 0.4 s and never finishes it
    with connect(server["port"]) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answered = False
        try:
            while time.monotonic() - started < REQUEST + 5:
                if select.select([sock], [], [], 0.4)[0]:
                    answered = True
                    break
                sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        # Then after REQUEST seconds (bytes do not reset it) a JSON 408, then the close
        assert answered
        assert_json_error(read_response(sock), 408, "request_timeout")
        assert REQUEST * 0.8 <= time.monotonic() - started < REQUEST + 3
        closed_within(sock, 5)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /health\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
def test_malformed_http_gets_the_json_error(server, raw):
    response = exchange(server["port"], raw)
    assert_json_error(response, 400, "bad_request")
    assert response[1]["connection"] == "close"


def test_whole_values_over_the_wire(server):
    key = f"x-api-key: {KEY}\r\n".encode()
    for path in (b"/clients/900001%0a", b"/orders?limit=1%0a", b"/orders?status=broken%0A"):
        raw = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n"
        assert_json_error(exchange(server["port"], raw), 400, "invalid_parameter")
    ok = b"GET /clients/900001 HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n"
    assert exchange(server["port"], ok)[0] == 200


def test_a_repeated_key_header_is_403(server):
    for first in (KEY, "wrong"):
        raw = (
            b"GET /products HTTP/1.1\r\nHost: x\r\n"
            + f"x-api-key: {first}\r\nx-api-key: {KEY}\r\n\r\n".encode()
        )
        assert_json_error(exchange(server["port"], raw), 403, "forbidden")


def test_health_answers_only_the_contract_fields(server):
    status, _h, body = exchange(server["port"], b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and set(json.loads(body)) == {"status", "data_as_of"}
    raw = f"GET /products HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n\r\n".encode()
    assert exchange(server["port"], raw)[1]["x-duff-build"] == "hostile-build"


def test_the_log_cannot_be_forged_or_drive_the_terminal(server):
    # Given requests whose paths hold a newline followed by a fake log line, and an escape
    forged = b"/x%0a2026-12-04%2010:00:00,000%20INFO%20duff.api.access%20GET%20/admin%20200"
    for path in (forged, b"/y%1b%5b2J%1b%5d0;owned%07"):
        exchange(server["port"], b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    exchange(server["port"], b"GARBAGE\r\n\r\n")  # and a request the protocol refuses
    exchange(server["port"], b"GET /flush HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while b"/flush" not in server["log"].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Then each request is one log line, escaped, with no control character at all
    log = server["log"].read_bytes()
    lines = log.decode("utf-8").splitlines()
    assert not [line for line in lines if line.startswith("2026-12-04 10:00:00")]
    assert not [line for line in lines if any(ord(c) < 32 or ord(c) == 127 for c in line)]
    assert any("/x\\n2026-12-04 10:00:00,000 INFO" in line for line in lines)
    assert any("/y\\x1b[2J\\x1b]0;owned\\x07" in line for line in lines)
    # and refused connections are one access-log line each, not uvicorn warnings
    assert any("refused connection from 127.0.0.1:" in line for line in lines)
    assert "Invalid HTTP request received" not in log.decode()


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each HTTP response in ``data``, in order (pipelined answers may
    arrive in one read, which ``read_response`` would cut after the first)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status, headers = parse_head(head)
        length = int(headers["content-length"])
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


def test_a_client_that_half_closes_after_its_requests_gets_every_answer(server):
    # Given requests no earlier test made (so the first round is not answered from the cache)
    key = f"x-api-key: {KEY}\r\n".encode()
    paths = [b"/orders?limit=7", b"/sales/daily?from=2024-01-03", b"/orders?limit=9"]
    raws = [b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n" + key + b"\r\n" for p in paths]
    pipelined = []
    # When a client sends one request, or two pipelined, then shuts down its sending side
    # (as HTTP/1.0-style clients and `nc -N` do), twice (the second time from the cache)
    for _ in range(2):
        for sent, answers in (([raws[0]], 1), (raws[1:], 2)):
            with connect(server["port"]) as sock:
                sock.sendall(b"".join(sent))
                sock.shutdown(socket.SHUT_WR)
                # Then every answer arrives, and the server closes after the last one
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
            got = split_responses(received)
            assert [status for status, _body in got] == [200] * answers
            assert json.loads(got[0][1])["items"]
            if answers == 2:
                pipelined.append([body for _status, body in got])
    # And the pipelined answers are whole, in order, the same as over ordinary connections
    expected = [exchange(server["port"], raw)[2] for raw in raws[1:]]
    assert pipelined == [expected, expected]
