"""Quorum reads and writes. No I/O of its own: peers are reached through the injected `call`.

PUT/DELETE: the coordinator must be a replica of the key, because the new version's dot is taken
from its local counters. A node outside the key's preference list forwards the whole request to
the first preference-list node it can reach ("coord_put"), which coordinates and answers; the
answer is passed through unchanged. The coordinator writes locally and sends its whole resulting
sibling set to the other replicas in parallel, answering after W durable acknowledgements.

GET: any node coordinates. It asks all N replicas, answers after R replies with the causally
merged sibling set (`clocks.sync`). A quorum that cannot be gathered in time answers 503.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from node import clocks
from node.clocks import VV
from node.replica import Replica
from node.ring import Ring
from node.transport import PeerError

# call(peer, kind, body, timeout_s) -> reply body; raises PeerError. Calls to self run locally.
Call = Callable[[str, str, Any, float], Awaitable[Any]]


@dataclass
class Gathered:
    results: dict[str, Any]
    failed: dict[str, PeerError]
    outstanding: list[str]

    def failure_reasons(self) -> dict[str, str]:
        out = {n: (e.reason if e.reason != "remote" else f"error: {e.detail}")
               for n, e in self.failed.items()}
        out.update({n: "timeout" for n in self.outstanding})
        return out


@dataclass
class Coordinator:
    node_id: str
    ring: Ring
    replica: Replica
    call: Call
    default_r: int
    default_w: int
    _background: set[asyncio.Task] = field(default_factory=set)

    # ---- reads ----

    async def get(self, key: str, r: int, pr: int, timeout: float) -> tuple[int, dict]:
        """(status, body) of a quorum read; 200, 404 or 503."""
        pref = self.ring.preference_list(key)
        needed = max(r, pr)
        got = await self.gather({n: self.call(n, "read", [key], timeout) for n in pref},
                                needed, timeout)
        answered = [n for n in pref if n in got.results]
        if len(answered) < needed:
            return 503, self.quorum_failed("pr" if pr > r else "r", needed, answered, got)
        try:
            merged = clocks.sync(*(clocks.decode_versions(got.results[n]) for n in answered))
        except ValueError as e:
            return 500, {"error": "internal", "message": f"a replica answered garbage: {e}"}
        ctx = clocks.context_of(merged)
        live = [v for v in merged if not v.tombstone]
        body = {
            "key": key,
            "values": _RawJson([v.value for v in live]),
            "context": clocks.encode_context(ctx),
            "clock": clocks.vv_counters(ctx),
            "replicas": [{"node": n, "primary": True} for n in answered],
        }
        if not live:
            body["error"] = "not_found"
            body["message"] = "no value" if not merged else "deleted (every sibling is a tombstone)"
        return (200 if live else 404), body

    # ---- writes ----

    async def put(self, key: str, value: str | None, ctx: VV, tombstone: bool, w: int, pw: int,
                  timeout: float) -> tuple[int, dict]:
        """(status, body) of a quorum write (a tombstone when `tombstone`); 200 or 503."""
        pref = self.ring.preference_list(key)
        if self.node_id not in pref:
            return await self._forward(pref, key, value, ctx, tombstone, w, pw, timeout)
        needed = max(w, pw)
        new, siblings, durable = self.replica.coordinate(key, value, ctx, tombstone)
        blob = clocks.encode_versions(siblings)
        calls: dict[str, Awaitable[Any]] = {}
        for n in pref:
            calls[n] = durable if n == self.node_id else self.call(
                n, "replicate", [key, blob], timeout)
        got = await self.gather(calls, needed, timeout)
        answered = [n for n in pref if n in got.results]
        if len(answered) < needed:
            body = self.quorum_failed("pw" if pw > w else "w", needed, answered, got)
            # a replica that timed out or lost the connection may still have stored it
            maybe = sum(1 for e in got.failed.values() if e.reason in ("timeout", "lost"))
            body["written"] = len(answered) + maybe + len(got.outstanding)
            body["version"] = new.id
            return 503, body
        return 200, {
            "context": clocks.encode_context(new.clock()),
            "clock": clocks.vv_counters(new.clock()),
            "replicas": [{"node": n, "primary": True} for n in answered],
            "version": new.id,
        }

    async def _forward(self, pref: list[str], key: str, value: str | None, ctx: VV,
                       tombstone: bool, w: int, pw: int, timeout: float) -> tuple[int, dict]:
        body = {"key": key, "value": value, "context": clocks.encode_context(ctx),
                "tombstone": tombstone, "w": w, "pw": pw, "timeout_ms": int(timeout * 1000)}
        failed: dict[str, str] = {}
        # the remote coordinator answers by its own deadline; allow for the hop
        wait = timeout * 1.1 + 0.2
        for target in pref:
            try:
                status, reply = await self.call(target, "coord_put", body, wait)
                return status, reply
            except PeerError as e:
                failed[target] = e.reason if e.reason != "remote" else f"error: {e.detail}"
                if e.maybe_delivered:
                    break  # it may be coordinating this write: trying another could duplicate it
        maybe = sum(1 for r in failed.values() if r in ("timeout", "lost"))
        return 503, {
            "error": "quorum_failed",
            "message": f"could not reach a replica of {key!r} to coordinate the write "
                       f"(this node is not one): {_describe(failed)}",
            "quorum": "pw" if pw > w else "w", "needed": max(w, pw), "acks": 0,
            "answered": [], "failed": failed, "written": maybe,
        }

    # ---- admin ----

    async def replicas_view(self, key: str, timeout: float) -> dict:
        pref = self.ring.preference_list(key)
        got = await self.gather({n: self.call(n, "read", [key], timeout) for n in pref},
                                len(pref), timeout)
        replicas: dict[str, dict] = {}
        for n in pref:
            if n in got.results:
                try:
                    versions = clocks.decode_versions(got.results[n])
                except ValueError as e:
                    replicas[n] = {"ok": False, "primary": True, "error": str(e)}
                    continue
                replicas[n] = {
                    "ok": True, "primary": True,
                    "clock": clocks.vv_counters(clocks.context_of(versions)),
                    "versions": [clocks.version_json(v) for v in versions],
                }
            else:
                reason = got.failure_reasons().get(n, "timeout")
                replicas[n] = {"ok": False, "primary": True, "error": reason}
        return {"key": key, "partition": self.ring.partition(key), "preference_list": pref,
                "fallbacks": self.ring.fallbacks(key), "replicas": replicas}

    # ---- helpers ----

    async def gather(self, calls: dict[str, Awaitable[Any]], needed: int,
                     timeout: float) -> Gathered:
        """Run the calls concurrently; return once `needed` succeeded, all ended, or time is up.
        Calls still running go on in the background (their frames are already sent)."""
        loop = asyncio.get_running_loop()
        results: dict[str, Any] = {}
        failed: dict[str, PeerError] = {}
        waiter = loop.create_future()
        total = len(calls)

        def finished(node: str, task: asyncio.Future) -> None:
            if task.cancelled():
                failed[node] = PeerError(node, "lost", "cancelled")
            elif task.exception() is not None:
                exc = task.exception()
                failed[node] = exc if isinstance(exc, PeerError) else PeerError(
                    node, "remote", f"{type(exc).__name__}: {exc}")
            else:
                results[node] = task.result()
            if not waiter.done() and (len(results) >= needed
                                      or len(results) + len(failed) == total):
                waiter.set_result(None)

        for node, aw in calls.items():
            task = asyncio.ensure_future(aw)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(functools.partial(finished, node))
        timer = loop.call_later(max(timeout, 0), _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
        res, fail = dict(results), dict(failed)
        return Gathered(res, fail, [n for n in calls if n not in res and n not in fail])

    def quorum_failed(self, quorum: str, needed: int, answered: list[str], got: Gathered) -> dict:
        reasons = got.failure_reasons()
        return {
            "error": "quorum_failed",
            "message": f"{quorum}={needed} needed {needed} replies, got {len(answered)}"
                       f" ({_describe(reasons)})",
            "quorum": quorum, "needed": needed, "acks": len(answered),
            "answered": answered, "failed": reasons,
        }


def _describe(reasons: dict[str, str]) -> str:
    return ", ".join(f"{n}: {r}" for n, r in sorted(reasons.items())) or "no replica answered"


def _settle(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class _RawJson(list):
    """A list of JSON texts to be spliced into a response as they are (no re-encoding)."""


def dumps(body: dict) -> bytes:
    """JSON-encode a response body, splicing `_RawJson` lists in verbatim."""
    raw = [(k, v) for k, v in body.items() if isinstance(v, _RawJson)]
    if not raw:
        return json.dumps(body).encode()
    plain = {k: v for k, v in body.items() if not isinstance(v, _RawJson)}
    parts = [json.dumps(plain)[:-1]]
    for k, v in raw:
        sep = ", " if len(parts) > 1 or plain else ""
        parts.append(f'{sep}{json.dumps(k)}: [{", ".join(v)}]')
    return ("".join(parts) + "}").encode()

