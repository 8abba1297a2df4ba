"""The client and admin HTTP API: routes and handlers; the contract is docs/node-api.md.
`node/http_server.py` speaks HTTP."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from node import clocks
from node.coordinator import dumps, orjson
from node.http_server import HttpServer, Request, Response

if TYPE_CHECKING:
    from node.server import Node

MAX_TIMEOUT_MS = 600_000
KV_PARAMS = frozenset({"r", "w", "pr", "pw", "timeout_ms"})


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def reply(status: int, body: dict) -> Response:
    return Response(status, dumps(body))


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    return reply(status, {"error": code, "message": message, **extra})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    # not orjson: it reads an integer over 64 bits as a float, and the stored value would change
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise BadRequest("malformed_json", f"body is not UTF-8: {e}") from e
    except (ValueError, RecursionError) as e:
        raise BadRequest("malformed_json", f"body is not valid JSON: {e}") from e


def _value_text(value: Any) -> str:
    """A value as the compact JSON text that is stored; raises UnicodeEncodeError for a lone
    surrogate (JSON allows "\\ud800", stored values are UTF-8, which has none)."""
    if orjson is not None:
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # a lone surrogate or an int over 64 bits: json takes both
            pass
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text.encode("utf-8")
    return text


def _int_param(request: Request, name: str, lo: int, hi: int, default: int) -> int:
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
        self.exact: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {
            "/admin/status": {"GET": self.status},
            "/admin/stats": {"GET": self.stats},
            "/admin/aae": {"GET": self.aae},
            "/admin/clock": {"GET": self.clock},
            "/admin/faults/partition": {"PUT": self.partition, "DELETE": self.heal},
        }
        # a path under the prefix names a key: the rest of the decoded path, "/" and all
        self.keyed: list[tuple[str, dict[str, Callable[[Request, str], Awaitable[Response]]]]] = [
            ("/kv/", {"GET": self.get, "PUT": self.put, "DELETE": self.delete}),
            ("/admin/replicas/", {"GET": self.replicas}),
        ]

    # ---- request parsing ----

    def _key(self, key: str) -> str:
        limit = self.cfg.max_key_bytes
        if len(key.encode("utf-8", "surrogatepass")) > limit:
            raise BadRequest("bad_key", f"key is longer than {limit} bytes (max_key_bytes)")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("bad_key", "key is not valid UTF-8") from None
        return key

    def _params(self, request: Request, quorum: str) -> tuple[int, int, float]:
        if not request.query_string:  # the common case: every default
            default = self.cfg.r if quorum == "r" else self.cfg.w
            return default, 0, self.cfg.request_timeout_ms / 1000
        query = request.query
        unknown = sorted(set(query) - KV_PARAMS)
        if unknown:
            raise BadRequest("unknown_parameter",
                             f"unknown query parameter(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(KV_PARAMS))})")
        for name in query:
            if len(query.getall(name)) > 1:
                raise BadRequest("bad_parameter", f"{name} is given more than once")
        n = self.cfg.n
        default = self.cfg.r if quorum == "r" else self.cfg.w
        other = "w" if quorum == "r" else "r"
        for name in (other, "p" + other):
            if name in query:
                raise BadRequest("bad_parameter", f"{name} does not apply to this request")
        q = _int_param(request, quorum, 1, n, default)
        pq = _int_param(request, "p" + quorum, 0, n, 0)
        timeout_ms = _int_param(request, "timeout_ms", 1, MAX_TIMEOUT_MS,
                                self.cfg.request_timeout_ms)
        return q, pq, timeout_ms / 1000

    def _body(self, request: Request) -> Any:
        limit = self.cfg.max_body_bytes
        if request.too_large:
            length = request.headers.get("content-length")
            raise BadRequest("body_too_large", f"body of {length} bytes is over the limit of "
                             f"{limit}" if length else f"body is over the limit of {limit} bytes")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise BadRequest("bad_body", f"Content-Encoding {encoding!r} is not supported: "
                                         "send the body uncompressed")
        raw = request.body
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

    def _client_auth(self, request: Request) -> None:
        token = self.cfg.client_token
        if token and not _bearer_ok(request, token):
            raise BadRequest("unauthorized", "missing or wrong \"Authorization: Bearer\" "
                                             "token (the cluster file sets client_token)", 401)

    # ---- client API ----

    async def get(self, request: Request, key: str) -> Response:
        self._client_auth(request)
        key = self._key(key)
        r, pr, timeout = self._params(request, "r")
        status, body = await self.node.coordinator.get(key, r, pr, timeout)
        return reply(status, body)

    async def put(self, request: Request, key: str) -> Response:
        self._client_auth(request)
        key = self._key(key)
        w, pw, timeout = self._params(request, "w")
        doc = self._body(request)
        extra = sorted(set(doc) - {"value", "context"})
        if extra:
            raise BadRequest("bad_body", f"unknown field(s) in body: {', '.join(extra)}")
        if "value" not in doc:
            raise BadRequest("bad_body", "body needs a \"value\" field")
        ctx = self._context(doc)
        try:
            value = _value_text(doc["value"])
        except UnicodeEncodeError as e:
            # JSON allows "\ud800"; stored values are UTF-8, which has no lone surrogates
            raise BadRequest("bad_value", "value holds a lone UTF-16 surrogate "
                                          f"({e.object[e.start:e.end]!r}), which is not "
                                          "Unicode text and cannot be stored") from None
        status, body = await self.node.coordinator.put(key, value, ctx, False, w, pw, timeout)
        if status in (400, 413):  # a limit or a forged context: said where it happened too
            self.node.log.info("refused PUT %s: %s", request.path, body.get("message"))
        return reply(status, body)

    async def delete(self, request: Request, key: str) -> Response:
        self._client_auth(request)
        key = self._key(key)
        w, pw, timeout = self._params(request, "w")
        doc = self._body(request) if request.body or request.too_large else {}
        extra = sorted(set(doc) - {"context"})
        if extra:
            raise BadRequest("bad_body", f"unknown field(s) in body: {', '.join(extra)}")
        ctx = self._context(doc)
        status, body = await self.node.coordinator.put(key, None, ctx, True, w, pw, timeout)
        return reply(status, body)

    # ---- admin API ----

    async def status(self, request: Request) -> Response:
        self._admin_read(request)
        return reply(200, self.node.status())

    async def stats(self, request: Request) -> Response:
        self._admin_read(request)
        return reply(200, self.node.stats_view())

    async def aae(self, request: Request) -> Response:
        self._admin_read(request)
        return reply(200, self.node.aae_status())

    async def replicas(self, request: Request, key: str) -> Response:
        self._admin_read(request)
        key = self._key(key)
        timeout = _int_param(request, "timeout_ms", 1, MAX_TIMEOUT_MS,
                             self.cfg.request_timeout_ms) / 1000
        return reply(200, await self.node.coordinator.replicas_view(key, timeout))

    async def clock(self, request: Request) -> Response:
        self._admin_read(request)
        return reply(200, {"wall_ms": self.node.clock.wall_ms()})

    def _admin_read(self, request: Request) -> None:
        if self.cfg.admin_reads == "token":
            self._authorise(request, "admin reads")

    def _authorise(self, request: Request, what: str = "fault injection") -> None:
        token = self.cfg.admin_token
        given = request.headers.get("x-admin-token", "")
        if not token:
            raise BadRequest("forbidden", f"{what} is off: the cluster file sets no "
                                          "admin_token", 403)
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise BadRequest("forbidden", "missing or wrong X-Admin-Token", 403)

    async def partition(self, request: Request) -> Response:
        self._authorise(request)
        doc = self._body(request)
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

    async def heal(self, request: Request) -> Response:
        self._authorise(request)
        self.node.transport.set_drop_from(())
        self.node.log.warning("fault: partition healed")
        return reply(200, {"drop_from": []})

    # ---- routing ----

    async def handle(self, request: Request) -> Response:
        """Every request's answer: a handler's, or the error it raised as JSON."""
        try:
            method = "GET" if request.method == "HEAD" else request.method
            path = request.path
            routes = self.exact.get(path)
            key = None
            if routes is None:
                for prefix, keyed in self.keyed:
                    if path.startswith(prefix) and len(path) > len(prefix):
                        routes, key = keyed, path[len(prefix):]
                        break
                else:
                    return error(404, "http_404", "Not Found")
            handler = routes.get(method)
            if handler is None:
                allowed = ",".join(sorted({*routes, "HEAD"} if "GET" in routes else routes))
                return Response(405, dumps({"error": "http_405",
                                            "message": "Method Not Allowed"}),
                                (("Allow", allowed),))
            return await (handler(request) if key is None else handler(request, key))
        except BadRequest as e:
            self.node.log.info("bad request %s %s: %s", request.method, request.path, e.message)
            return error(e.status, e.code, e.message)
        except Exception as e:
            self.node.log.exception("internal error on %s %s", request.method, request.path)
            return error(500, "internal", f"{type(e).__name__}: {e}")


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode())


def make_server(node: Node) -> HttpServer:
    api = Api(node)
    cfg = node.config
    # a key at its longest, percent-encoded, and a query
    return HttpServer(api.handle, cfg.max_body_bytes, 3 * cfg.max_key_bytes + 8192, node.log,
                      lambda reason: error(400, "malformed_http", reason))
