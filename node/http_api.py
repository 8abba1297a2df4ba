"""The client and admin HTTP API (aiohttp); the contract is docs/node-api.md."""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError

from node import clocks
from node.coordinator import dumps

if TYPE_CHECKING:
    from node.server import Node

MAX_TIMEOUT_MS = 600_000
LOG = web.AppKey("log", logging.Logger)
KV_PARAMS = frozenset({"r", "w", "pr", "pw", "timeout_ms"})


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def reply(status: int, body: dict) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json")


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return reply(status, {"error": code, "message": message, **extra})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise BadRequest("malformed_json", f"body is not UTF-8: {e}") from e
    except (ValueError, RecursionError) as e:
        raise BadRequest("malformed_json", f"body is not valid JSON: {e}") from e


def _int_param(request: web.Request, name: str, lo: int, hi: int, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("bad_parameter", f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest("bad_parameter", f"{name}={value} is out of range ({lo}..{hi})")
    return value


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.cfg = node.config
        self.context_key = clocks.context_key(node.config.cluster_secret)

    # ---- request parsing ----

    def _key(self, request: web.Request) -> str:
        key = request.match_info["key"]
        limit = self.cfg.max_key_bytes
        if len(key.encode("utf-8", "surrogatepass")) > limit:
            raise BadRequest("bad_key", f"key is longer than {limit} bytes (max_key_bytes)")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("bad_key", "key is not valid UTF-8") from None
        return key

    def _params(self, request: web.Request, quorum: str) -> tuple[int, int, float]:
        if not request.query_string:  # the common case: every default
            default = self.cfg.r if quorum == "r" else self.cfg.w
            return default, 0, self.cfg.request_timeout_ms / 1000
        unknown = sorted(set(request.query) - KV_PARAMS)
        if unknown:
            raise BadRequest("unknown_parameter",
                             f"unknown query parameter(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(KV_PARAMS))})")
        for name in request.query:
            if len(request.query.getall(name)) > 1:
                raise BadRequest("bad_parameter", f"{name} is given more than once")
        n = self.cfg.n
        default = self.cfg.r if quorum == "r" else self.cfg.w
        other = "w" if quorum == "r" else "r"
        for name in (other, "p" + other):
            if name in request.query:
                raise BadRequest("bad_parameter", f"{name} does not apply to this request")
        q = _int_param(request, quorum, 1, n, default)
        pq = _int_param(request, "p" + quorum, 0, n, 0)
        timeout_ms = _int_param(request, "timeout_ms", 1, MAX_TIMEOUT_MS,
                                self.cfg.request_timeout_ms)
        return q, pq, timeout_ms / 1000

    async def _body(self, request: web.Request) -> Any:
        limit = self.cfg.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BadRequest("body_too_large",
                             f"body of {request.content_length} bytes is over the limit of {limit}")
        try:
            chunks: list[bytes] = []
            size = 0
            while size <= limit:  # read() returns what has arrived, not all of it
                chunk = await request.content.read(limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            raw = b"".join(chunks)
        except Exception as e:  # a client that hangs up or sends a broken chunked body
            raise BadRequest("bad_body", f"could not read the body: {e}") from e
        if len(raw) > limit:
            raise BadRequest("body_too_large", f"body is over the limit of {limit} bytes")
        if not raw:
            raise BadRequest("malformed_json", "body is empty; expected a JSON object")
        doc = parse_json(raw)
        if not isinstance(doc, dict):
            raise BadRequest("malformed_json", "body must be a JSON object")
        return doc

    def _context(self, doc: dict) -> clocks.VV:
        ctx = doc.get("context")
        if ctx is not None and not isinstance(ctx, str):
            raise BadRequest("bad_context", "context must be a string or null")
        try:
            return clocks.open_context(ctx, self.context_key, self.cfg.max_context_entries)
        except clocks.ContextError as e:
            raise BadRequest("bad_context", str(e)) from e

    def _client_auth(self, request: web.Request) -> None:
        token = self.cfg.client_token
        if token and not _bearer_ok(request, token):
            raise BadRequest("unauthorized", "missing or wrong \"Authorization: Bearer\" "
                                             "token (the cluster file sets client_token)", 401)

    # ---- client API ----

    async def get(self, request: web.Request) -> web.Response:
        self._client_auth(request)
        key = self._key(request)
        r, pr, timeout = self._params(request, "r")
        status, body = await self.node.coordinator.get(key, r, pr, timeout)
        return reply(status, body)

    async def put(self, request: web.Request) -> web.Response:
        self._client_auth(request)
        key = self._key(request)
        w, pw, timeout = self._params(request, "w")
        doc = await self._body(request)
        extra = sorted(set(doc) - {"value", "context"})
        if extra:
            raise BadRequest("bad_body", f"unknown field(s) in body: {', '.join(extra)}")
        if "value" not in doc:
            raise BadRequest("bad_body", "body needs a \"value\" field")
        ctx = self._context(doc)
        value = json.dumps(doc["value"], separators=(",", ":"), ensure_ascii=False)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            # JSON allows "\ud800"; stored values are UTF-8, which has no lone surrogates
            raise BadRequest("bad_value", "value holds a lone UTF-16 surrogate "
                                          f"({e.object[e.start:e.end]!r}), which is not "
                                          "Unicode text and cannot be stored") from None
        status, body = await self.node.coordinator.put(key, value, ctx, False, w, pw, timeout)
        if status in (400, 413):  # a limit or a forged context: said where it happened too
            self.node.log.info("refused PUT %s: %s", request.path, body.get("message"))
        return reply(status, body)

    async def delete(self, request: web.Request) -> web.Response:
        self._client_auth(request)
        key = self._key(request)
        w, pw, timeout = self._params(request, "w")
        doc = await self._body(request) if await _has_body(request) else {}
        extra = sorted(set(doc) - {"context"})
        if extra:
            raise BadRequest("bad_body", f"unknown field(s) in body: {', '.join(extra)}")
        ctx = self._context(doc)
        status, body = await self.node.coordinator.put(key, None, ctx, True, w, pw, timeout)
        return reply(status, body)

    # ---- admin API ----

    async def status(self, request: web.Request) -> web.Response:
        self._admin_read(request)
        return reply(200, self.node.status())

    async def stats(self, request: web.Request) -> web.Response:
        self._admin_read(request)
        return reply(200, self.node.stats_view())

    async def aae(self, request: web.Request) -> web.Response:
        self._admin_read(request)
        return reply(200, self.node.aae_status())

    async def replicas(self, request: web.Request) -> web.Response:
        self._admin_read(request)
        key = self._key(request)
        timeout = _int_param(request, "timeout_ms", 1, MAX_TIMEOUT_MS,
                             self.cfg.request_timeout_ms) / 1000
        return reply(200, await self.node.coordinator.replicas_view(key, timeout))

    async def clock(self, request: web.Request) -> web.Response:
        self._admin_read(request)
        return reply(200, {"wall_ms": self.node.clock.wall_ms()})

    def _admin_read(self, request: web.Request) -> None:
        if self.cfg.admin_reads == "token":
            self._authorise(request, "admin reads")

    def _authorise(self, request: web.Request, what: str = "fault injection") -> None:
        token = self.cfg.admin_token
        given = request.headers.get("X-Admin-Token", "")
        if not token:
            raise BadRequest("forbidden", f"{what} is off: the cluster file sets no "
                                          "admin_token", 403)
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise BadRequest("forbidden", "missing or wrong X-Admin-Token", 403)

    async def partition(self, request: web.Request) -> web.Response:
        self._authorise(request)
        doc = await self._body(request)
        drop = doc.get("drop_from")
        if not isinstance(drop, list) or not all(isinstance(p, str) for p in drop):
            raise BadRequest("bad_body", "drop_from must be a list of node ids")
        known = {e.id for e in self.cfg.nodes}
        unknown = sorted(set(drop) - known)
        if unknown:
            raise BadRequest("bad_body", f"unknown node id(s): {', '.join(unknown)}")
        self.node.transport.set_drop_from(drop)
        self.node.log.warning("fault: dropping internode frames from %s", sorted(drop) or "none")
        return reply(200, {"drop_from": sorted(drop)})

    async def heal(self, request: web.Request) -> web.Response:
        self._authorise(request)
        self.node.transport.set_drop_from(())
        self.node.log.warning("fault: partition healed")
        return reply(200, {"drop_from": []})


def _bearer_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode())


class _OneLineBadHttp(logging.Filter):
    """aiohttp logs each malformed request at ERROR with a traceback; one WARNING line naming
    the client and the fault says as much without flooding the log under a fuzzer."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, http_exceptions.HttpProcessingError | RequestPayloadError):
            # RequestPayloadError: a body that does not decode (Content-Encoding: gzip over
            # garbage, found by benchmarks/fuzz.py), met again when aiohttp drains it
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "malformed HTTP request from %s: %s", (
                remote, " ".join(str(exc).split()) or type(exc).__name__)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def http_logger(log: logging.Logger) -> logging.Logger:
    """The logger for aiohttp's request handler: the node's, with bad requests on one line."""
    child = log.getChild("http")
    if not any(isinstance(f, _OneLineBadHttp) for f in child.filters):
        child.addFilter(_OneLineBadHttp())
    return child


async def _has_body(request: web.Request) -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        request.app[LOG].info("bad request %s %s: %s", request.method, request.path, e.message)
        return error(e.status, e.code, e.message)
    except web.HTTPException as e:
        if e.status == 413:
            return error(400, "body_too_large", "body is over the size limit")
        return error(e.status, "http_" + str(e.status), e.reason)
    except Exception as e:
        request.app[LOG].exception("internal error on %s %s", request.method, request.path)
        return error(500, "internal", f"{type(e).__name__}: {e}")


def make_app(node: Node) -> web.Application:
    api = Api(node)
    app = web.Application(middlewares=[errors], client_max_size=node.config.max_body_bytes)
    app[LOG] = node.log
    key = "/{key:.+}"
    app.router.add_get("/kv" + key, api.get)
    app.router.add_put("/kv" + key, api.put)
    app.router.add_delete("/kv" + key, api.delete)
    app.router.add_get("/admin/status", api.status)
    app.router.add_get("/admin/stats", api.stats)
    app.router.add_get("/admin/aae", api.aae)
    app.router.add_get("/admin/replicas" + key, api.replicas)
    app.router.add_get("/admin/clock", api.clock)
    app.router.add_put("/admin/faults/partition", api.partition)
    app.router.add_delete("/admin/faults/partition", api.heal)
    return app
