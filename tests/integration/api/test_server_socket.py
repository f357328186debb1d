"""The listening socket of ``python -m api`` (api.server.listen) and what it accepts."""

import asyncio
import socket

from api.server import listen


def test_accepted_connections_have_tcp_nodelay():
    # Given the port bound the way python -m api binds it
    sock = listen("127.0.0.1", 0)
    host, port = sock.getsockname()

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connection(reader, writer):
            accepted = writer.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)
        async with server:
            # When a client connects through asyncio, as uvicorn serves
            _reader, writer = await asyncio.open_connection(host, port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    # Then the accepted socket has Nagle's algorithm off
    assert asyncio.run(accept_one()) != 0


def test_the_protocol_sets_tcp_nodelay_on_any_socket(api_it_world):
    # Given the live test server, whose listening socket was made with proto 0 (conftest),
    # so asyncio itself does not set the option
    server = api_it_world["server"]
    assert server.sock.proto == 0
    # When a client holds a connection open
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        # Then the server side of it has Nagle's algorithm off (api.http_protocol)
        (conn,) = server.server.server_state.connections
        accepted = conn.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
