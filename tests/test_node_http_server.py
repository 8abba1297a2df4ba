"""node/http_server.py in-process on real loopback sockets: what the node's API tests cannot
reach quickly (idle connections, a handler that fails, shutdown with a request in flight)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from node import http_server
from node.http_server import HttpServer, Request, Response

HOST = "127.0.0.1"


async def handler(req: Request) -> Response:
    if req.path == "/boom":
        raise RuntimeError("a bug in a handler")
    if req.path == "/slow":
        await asyncio.sleep(0.3)
    return Response(200, b'{"path": "%s", "body": %d}' % (req.path.encode(), len(req.body)))


async def started() -> tuple[HttpServer, int]:
    server = HttpServer(handler, max_body=100, max_url=200, log=logging.getLogger("t"),
                        malformed=lambda reason: Response(400, b'{"error": "malformed_http"}'))
    await server.start(HOST, 0)
    assert server._server is not None
    return server, server._server.sockets[0].getsockname()[1]


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
              request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(head.split()[1]), await reader.readexactly(length)


def test_a_failing_handler_is_a_500_and_the_connection_serves_on(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, port = await started()
        reader, writer = await asyncio.open_connection(HOST, port)
        assert (await ask(reader, writer, b"GET /boom HTTP/1.1\r\n\r\n"))[0] == 500
        status, body = await ask(reader, writer, b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert status == 200 and body == b'{"path": "/x", "body": 3}'
        # over max_body: the handler is told (too_large) and gets none of it
        status, body = await ask(reader, writer, b"PUT /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n"
                                 + b"z" * 101)
        assert status == 200 and body.endswith(b'"body": 0}')
        writer.close()
        await server.close()
    asyncio.run(main())
    assert "internal error on GET /boom" in caplog.text and "a bug in a handler" in caplog.text


def test_an_idle_connection_is_closed_and_a_busy_one_is_not(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(http_server, "KEEPALIVE_S", 0.25)

    async def main() -> None:
        server, port = await started()
        idle_r, idle_w = await asyncio.open_connection(HOST, port)
        busy_r, busy_w = await asyncio.open_connection(HOST, port)
        for _ in range(8):  # 0.8 s: a request every 0.1 s keeps this one open
            assert (await ask(busy_r, busy_w, b"GET /a HTTP/1.1\r\n\r\n"))[0] == 200
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(idle_r.read(), 2) == b""  # closed by the server
        assert (await ask(busy_r, busy_w, b"GET /a HTTP/1.1\r\n\r\n"))[0] == 200
        idle_w.close()
        busy_w.close()
        await server.close()
    asyncio.run(main())


def test_close_lets_a_request_in_flight_answer(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, port = await started()
        reader, writer = await asyncio.open_connection(HOST, port)
        answer = asyncio.ensure_future(ask(reader, writer, b"GET /slow HTTP/1.1\r\n\r\n"))
        await asyncio.sleep(0.05)
        await server.close(grace=2.0)
        assert (await answer)[0] == 200
        assert await asyncio.wait_for(reader.read(), 2) == b""
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)
    asyncio.run(main())
