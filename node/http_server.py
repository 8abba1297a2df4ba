"""A lean HTTP/1.1 server for the node's API: httptools (llhttp) parses, one asyncio.Protocol
per connection answers its requests in order.

aiohttp's server spent ~35 µs of CPU per request more than this on the 2-core CI machine
(issue 18); the node needs none of what that buys (routing tables, middlewares, streaming
bodies, signals). What it keeps from a full server: keep-alive and pipelining, chunked bodies,
`Expect: 100-continue`, HEAD, bounded request lines, headers and bodies, idle connections
closed, and one WARNING line per malformed request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

import httptools
from multidict import MultiDictProxy
from yarl import URL

from node.env import OnLoop

KEEPALIVE_S = 75.0  # an idle connection is closed after this long (aiohttp's default too)
MAX_HEADER_BYTES = 32_768
MAX_HEADERS = 128
MAX_PIPELINED = 16  # requests queued on one connection before it stops reading
_REASONS = {200: "OK", 100: "Continue", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class Request:
    """One parsed request; the body is read whole (bounded by `max_body`) before dispatch."""

    __slots__ = ("method", "path", "query_string", "headers", "body", "remote", "too_large",
                 "_query")

    def __init__(self, method: str, target: bytes, headers: dict[str, str], remote: str) -> None:
        self.method = method
        self.path, self.query_string = _split_target(target)
        self.headers = headers  # lower-case names; a repeated header keeps its first value
        self.body = b""
        self.remote = remote
        self.too_large = False  # the body went over max_body: `body` holds none of it
        self._query: MultiDictProxy[str] | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        """The query's parameters, decoded as aiohttp and yarl do (`+` is a space)."""
        if self._query is None:
            self._query = URL.build(query_string=self.query_string, encoded=True).query
        return self._query


def _split_target(target: bytes) -> tuple[str, str]:
    """The percent-decoded path and the raw query of a request target. Decoding is yarl's, as
    under aiohttp before: `%2F` is `/`, and a sequence that is not UTF-8 stays as written."""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise MalformedRequest(f"request target {target[:100]!r} is not a URL") from None
    raw = url.path.decode("ascii")  # llhttp lets no other byte through
    if not raw.startswith("/"):
        raise MalformedRequest(f"request target {target[:100]!r} is not a path")
    if "%" in raw:
        raw = URL.build(path=raw, encoded=True).path
    return raw, url.query.decode("ascii") if url.query else ""


class Response:
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()
                 ) -> None:
        self.status = status
        self.body = body
        self.headers = headers


Handler = Callable[[Request], Awaitable[Response]]


class MalformedRequest(Exception):
    """A request the server answers 400 itself, then closes the connection."""


def _date() -> bytes:
    return formatdate(usegmt=True).encode()


def encode_response(resp: Response, head_only: bool, connection: bytes | None,
                    date: bytes) -> bytes:
    status = resp.status
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Unknown").encode()),
             b"Content-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n"
             % (len(resp.body), date)]
    lines.extend(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in resp.headers)
    if connection is not None:
        lines.append(b"Connection: %s\r\n" % connection)
    lines.append(b"\r\n")
    if not head_only:
        lines.append(resp.body)
    return b"".join(lines)


class HttpServer(OnLoop):
    """Serves `handler` on a listening socket. `malformed(reason)` makes the 400 sent for a
    request the parser refuses."""

    def __init__(self, handler: Handler, max_body: int, max_url: int, log: logging.Logger,
                 malformed: Callable[[str], Response]) -> None:
        self.handler = handler
        self.max_body = max_body
        self.max_url = max_url
        self.log = log
        self.malformed = malformed
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._date = _date()
        self._date_at = 0.0

    def date(self) -> bytes:
        now = time.monotonic()
        if now - self._date_at >= 1.0:  # formatting it per response costs more than the rest
            self._date, self._date_at = _date(), now
        return self._date

    async def start(self, host: str, port: int, backlog: int = 1024) -> None:
        loop = self._loop
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                reuse_address=True, backlog=backlog)
        self._sweeper = loop.call_later(KEEPALIVE_S / 5, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            conn.close_if_idle(now)
        self._sweeper = self._loop.call_later(KEEPALIVE_S / 5, self._sweep)

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, let requests in progress answer for up to `grace` seconds, close."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace
        while any(c.running for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote = "?"
        self.queue: collections.deque[_Queued] = collections.deque()
        self.running: asyncio.Task | None = None
        self.paused_reading = False
        self.write_paused = False
        self.broken = False  # the parser refused a request: later bytes are not read
        self.closing = False
        self.last_active = time.monotonic()
        # the request being parsed
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.req: Request | None = None

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.queue.clear()
        # a request in progress runs on (a write's quorum is not abandoned halfway);
        # its answer has nowhere to go

    def data_received(self, data: bytes) -> None:
        if self.closing or self.broken:
            return
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # the request is answered as any other and the upgrade it asked for is ignored
            # (RFC 9110 7.8); llhttp stops there, so a fresh parser reads what follows
            self.parser = httptools.HttpRequestParser(self)
            tail = data[e.args[0]:] if e.args and isinstance(e.args[0], int) else b""
            if tail:
                self.data_received(tail)
        except httptools.HttpParserError as e:
            cause = e.__context__  # what a callback raised
            self._refuse(str(cause) if isinstance(cause, MalformedRequest) else
                         " ".join(f"{e} {cause or ''}".split()))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._next()

    # ---- httptools callbacks ----

    def on_message_begin(self) -> None:
        self.url, self.headers, self.header_bytes = b"", {}, 0
        self.body, self.body_size, self.req = [], 0, None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.server.max_url:
            raise MalformedRequest(f"request target is over {self.server.max_url} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES or len(self.headers) >= MAX_HEADERS:
            raise MalformedRequest(f"headers are over {MAX_HEADER_BYTES} bytes or "
                                   f"{MAX_HEADERS} fields")
        key = name.decode("latin-1").lower()
        if key not in self.headers:
            self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        req = self.req = Request(self.parser.get_method().decode("ascii", "replace"),
                                 self.url, self.headers, self.remote)
        length = req.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            req.too_large = True
        if req.headers.get("expect", "").lower() == "100-continue" and self.transport:
            if req.too_large:  # answered now; the body will not come
                raise MalformedRequest(f"body of {length} bytes is over the limit of "
                                       f"{self.server.max_body}")
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        req = self.req
        assert req is not None
        self.body_size += len(chunk)
        if self.body_size > self.server.max_body:
            req.too_large = True
            self.body = []  # read on to keep the connection in step, kept nowhere
        elif not req.too_large:
            self.body.append(chunk)

    def on_message_complete(self) -> None:
        req = self.req
        assert req is not None
        if not req.too_large:
            req.body = b"".join(self.body)
        self.body, self.req = [], None
        # HTTP/1.0 keeps a connection only if asked, and is told so
        connection = (None if not self.parser.should_keep_alive() else
                      b"keep-alive" if self.parser.get_http_version() == "1.0" else b"")
        self.queue.append(_Queued(req, connection))
        if len(self.queue) > MAX_PIPELINED and self.transport and not self.paused_reading:
            self.transport.pause_reading()
            self.paused_reading = True
        self._next()

    # ---- answering ----

    def _next(self) -> None:
        if self.running is not None or self.write_paused or self.closing or not self.queue:
            return
        if self.paused_reading and len(self.queue) <= MAX_PIPELINED // 2 and self.transport:
            self.transport.resume_reading()
            self.paused_reading = False
        item = self.queue.popleft()
        if item.req is None:
            self._send(self.server.malformed(item.refused), False, b"close")
            self._close()
            return
        self.running = self.server._loop.create_task(self.server.handler(item.req))
        self.running.add_done_callback(lambda task: self._answer(task, item))

    def _answer(self, task: asyncio.Task, item: _Queued) -> None:
        self.running = None
        self.last_active = time.monotonic()
        if task.cancelled() or self.transport is None:
            return
        exc = task.exception()
        if exc is not None:  # the handler maps every error; this is a bug, not the client's
            self.server.log.error("internal error on %s %s", item.req.method, item.req.path,
                                  exc_info=exc)
            resp = Response(500, b'{"error":"internal","message":"internal server error"}')
        else:
            resp = task.result()
        close = item.connection is None or self.closing
        self._send(resp, item.req.method == "HEAD", b"close" if close else item.connection or None)
        if close:
            self._close()
        else:
            self._next()

    def _send(self, resp: Response, head_only: bool, connection: bytes | None) -> None:
        if not self.closing and self.transport is not None:
            self.transport.write(encode_response(resp, head_only, connection,
                                                 self.server.date()))

    def _refuse(self, reason: str) -> None:
        """A request the parser refused: one WARNING line, then a 400 and the connection
        closes, once the requests pipelined before it are answered."""
        self.server.log.warning("malformed HTTP request from %s: %s", self.remote, reason)
        self.broken = True
        self.queue.append(_Queued(None, None, reason))
        self._next()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close_if_idle(self, now: float) -> None:
        if self.running is None and not self.queue and now - self.last_active > KEEPALIVE_S:
            self._close()

    def abort(self) -> None:
        self.closing = True
        if self.running is not None:
            self.running.cancel()
        if self.transport is not None:
            self.transport.abort()


class _Queued:
    __slots__ = ("req", "connection", "refused")

    def __init__(self, req: Request | None, connection: bytes | None, refused: str = "") -> None:
        self.req = req  # None: the parser refused the request, for the reason in `refused`
        # the answer's Connection header: None to close after it, b"" to say nothing
        self.connection = connection
        self.refused = refused
