"""Clients: one store's protocol behind the workloads' abstract operations, every outcome sorted
into "it happened", "it certainly did not" or "unknown".

A method that returns, happened (`ok`). `OpFailed` means the request certainly had no effect
(refused connection, 4xx, a 503 that wrote nothing); `OpUnknown` means it may have had one
(timeout, dropped connection, a 503 after a partial write, any other server error). Workloads
turn these into `fail` and `info` (`harness.workloads.base.Workload.execute`).

`Client` is the interface (each store's client declares the operations it performs in `ops`);
`NodeClient` is the reference Dynamo node's, over its `/kv/{key}` HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp


class OpFailed(Exception):
    """The operation certainly did not take effect."""


class OpUnknown(Exception):
    """The operation may or may not have taken effect."""


@dataclass
class Reply:
    """A successful answer from the store."""

    values: list[Any] = field(default_factory=list)
    context: str | None = None
    clock: dict[str, int] = field(default_factory=dict)
    found: bool = True
    meta: dict[str, Any] = field(default_factory=dict)  # store-specific facts for the history


def client_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session that sends every request at most once.

    aiohttp silently resends an idempotent request (PUT and DELETE included) once when a pooled
    connection drops before the answer. Against a node killed mid-request that resend is refused,
    which would record as `fail` a write the node may already have replicated: the outcome must
    stay unknown (`info`), so the resend is switched off.
    """
    session = aiohttp.ClientSession(**kwargs)
    session._retry_connection = False  # aiohttp (up to 3.14 at least) has no public switch
    return session


# The abstract operations a client may perform. `siblings`: reads return every concurrent
# version with an opaque causal context, and writes and deletes take that context back (Dynamo).
OPS = ("read", "write", "cas", "delete", "add", "read-set", "siblings")


class Client:
    """Requests to one node of one store; one instance per worker and node, sharing the worker's
    aiohttp session. A store's client overrides the operations it names in `ops`; the others
    are never called, because a workload needing them is refused before the run starts."""

    ops: frozenset[str] = frozenset()

    def __init__(
        self, session: aiohttp.ClientSession, node: str, base_url: str, timeout_s: float
    ) -> None:
        self.session = session
        self.node = node
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def get(self, key: str) -> Reply:
        """read: the key's value(s); `found` False when it has none."""
        raise self._unsupported("read")

    async def put(self, key: str, value: Any, context: str | None = None) -> Reply:
        """write: set the key to `value` (with the context of a read, where the store has one)."""
        raise self._unsupported("write")

    async def delete(self, key: str, context: str | None = None) -> Reply:
        raise self._unsupported("delete")

    async def cas(self, key: str, old: Any, new: Any) -> Reply:
        """cas: set the key to `new` only if it holds `old`; OpFailed when it did not."""
        raise self._unsupported("cas")

    async def add(self, key: str, element: Any) -> Reply:
        """add: put `element` into the set at `key`."""
        raise self._unsupported("add")

    async def read_set(self, key: str) -> Reply:
        """read-set: every element of the set at `key`, in `values`."""
        raise self._unsupported("read-set")

    async def close(self) -> None:
        """Release what the client holds beyond the shared session (its own connections)."""

    def _unsupported(self, op: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not perform {op!r} "
                                   f"(it performs {', '.join(sorted(self.ops))})")


class NodeClient(Client):
    """The reference Dynamo node's client API: siblings and their causal context."""

    ops = frozenset({"read", "write", "delete", "siblings"})

    def __init__(
        self, session: aiohttp.ClientSession, node: str, base_url: str, timeout_s: float,
        params: dict[str, str] | None = None,
    ) -> None:
        super().__init__(session, node, base_url, timeout_s)
        self.params = params or {}  # query parameters of every request (e.g. pr)

    async def get(self, key: str) -> Reply:
        status, body = await self._request("GET", key, None)
        if status == 404:
            return Reply(values=[], context=body.get("context"), clock=body.get("clock") or {},
                         found=False)
        if status == 200:
            return Reply(values=list(body.get("values", [])), context=body.get("context"),
                         clock=body.get("clock") or {})
        raise OpFailed(_describe(status, body))  # a read has no effect, whatever went wrong

    async def put(self, key: str, value: Any, context: str | None = None) -> Reply:
        status, body = await self._request("PUT", key, {"value": value, "context": context})
        if status == 200:
            return Reply(values=[value], context=body.get("context"), clock=body.get("clock") or {})
        raise _write_error(status, body)

    async def delete(self, key: str, context: str | None = None) -> Reply:
        """Write a tombstone over the versions `context` covers; same outcome rules as `put`."""
        status, body = await self._request("DELETE", key, {"context": context})
        if status == 200:
            return Reply(values=[], context=body.get("context"), clock=body.get("clock") or {},
                         found=False)
        raise _write_error(status, body)

    async def _request(self, method: str, key: str, payload: Any) -> tuple[int, dict[str, Any]]:
        url = f"{self.base_url}/kv/{quote(key, safe='')}"
        try:
            async with self.session.request(method, url, json=payload, params=self.params,
                                            timeout=self.timeout) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {"error": "unreadable_body", "message": (await resp.text())[:200]}
                return resp.status, body if isinstance(body, dict) else {"body": body}
        except aiohttp.ClientConnectorError as e:
            # the connection was never made, so nothing was sent
            raise OpFailed(f"connect failed: {e.os_error or e}") from e
        except TimeoutError as e:
            raise OpUnknown("timeout") from e
        except aiohttp.ClientError as e:
            raise OpUnknown(f"{type(e).__name__}: {e}") from e


def _write_error(status: int, body: dict[str, Any]) -> Exception:
    """A failed write: certainly without effect (4xx, 503 that wrote nothing) or unknown."""
    if 400 <= status < 500:
        return OpFailed(_describe(status, body))
    if status == 503 and body.get("error") == "quorum_failed" and body.get("written") == 0:
        return OpFailed(_describe(status, body))
    return OpUnknown(_describe(status, body))


def _describe(status: int, body: dict[str, Any]) -> str:
    code = body.get("error", "http_error")
    msg = body.get("message", "")
    extra = ""
    if "written" in body:
        extra = f" (written={body['written']})"
    return f"{status} {code}: {msg}{extra}".strip()
