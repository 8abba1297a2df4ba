"""Quorum reads and writes. No I/O of its own: peers are reached through the injected `call`.

PUT/DELETE: the coordinator must be a replica of the key, because the new version's dot is taken
from its local counters. A node outside the key's preference list forwards the whole request to
the first preference-list node it can reach ("coord_put"), which coordinates and answers; the
answer is passed through unchanged. The coordinator writes locally and sends its whole resulting
sibling set to the other replicas in parallel, answering after W durable acknowledgements, its
own among them (its dot must never be lost where others keep the version: see `put`).

GET: any node coordinates. It asks the N replicas, answers after R replies with the causally
merged sibling set (`clocks.sync`). A quorum that cannot be gathered in time answers 503.

Sloppy quorum (`sloppy_quorum = true`): a primary that this node's failure detector holds down is
replaced at once by the next healthy node clockwise (a fallback), and so is a primary that fails
or has not answered by half the timeout. A fallback stores a write as a *hint* naming the primary
it stands for (node/handoff.py delivers it later) and answers reads from its hints. Fallbacks
count toward W and R, never toward PW and PR. In strict mode no fallback is ever asked. A primary
that still has not acknowledged a write by its deadline gets a hint held by the coordinator
(`hint_missed`), in either mode, so that handoff alone repairs every missed write.

Read repair (`read_repair = true`): after a GET has answered, the coordinator waits (until the
request's deadline) for the remaining replies and sends the merged sibling set to every primary
that answered with less (`read_repair`).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from node import clocks
from node.bugs import last_write_wins
from node.clocks import VV, Version
from node.env import OnLoop
from node.replica import ForgedContext, Replica, SiblingLimit
from node.ring import Ring
from node.transport import PeerError

try:
    import orjson  # optional, as uvloop: several times faster than json for response bodies
except ImportError:  # the docker and ssh platforms' hosts may not have it
    orjson = None

# call(peer, kind, body, timeout_s) -> reply body; raises PeerError. Calls to self run locally.
Call = Callable[[str, str, Any, float], Awaitable[Any]]
# make(node, owner) -> the call to `node`; owner is None for a primary, else the primary it
# stands for
MakeCall = Callable[[str, "str | None"], Awaitable[Any]]


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


class Gatherer:
    """Calls running concurrently, added at any time; `changed()` wakes on every completion."""

    def __init__(self, background: set[asyncio.Task], loop: asyncio.AbstractEventLoop) -> None:
        self.background = background
        self.loop = loop
        self.order: list[str] = []
        self.results: dict[str, Any] = {}
        self.failed: dict[str, PeerError] = {}
        self._open: set[str] = set()  # added, not yet ended: `pending` without a scan
        self._waiter: asyncio.Future | None = None
        self._alarm: asyncio.TimerHandle | None = None  # wakes `changed` at `_alarm_at`
        self._alarm_at = 0.0
        self._then: Callable[[], None] | None = None
        self._then_timer: asyncio.TimerHandle | None = None

    def add(self, node: str, aw: Awaitable[Any]) -> None:
        self.order.append(node)
        if isinstance(aw, asyncio.Future):
            if aw.done() and not aw.cancelled() and aw.exception() is None:
                self.results[node] = aw.result()  # already there (a local read): no wait
                return
            # a future (a transport's request) is held by whoever completes it: only a task
            # needs a reference in `background` to survive until it ends
            self._open.add(node)
            aw.add_done_callback(functools.partial(self._finished, node))
            return
        self._open.add(node)
        task = asyncio.ensure_future(aw, loop=self.loop)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(functools.partial(self._finished, node))

    def _finished(self, node: str, task: asyncio.Future) -> None:
        self._open.discard(node)
        if task.cancelled():
            self.failed[node] = PeerError(node, "lost", "cancelled")
        elif (exc := task.exception()) is not None:
            self.failed[node] = exc if isinstance(exc, PeerError) else PeerError(
                node, "remote", f"{type(exc).__name__}: {exc}")
        else:
            self.results[node] = task.result()
        _settle(self._waiter)
        if self._then is not None and not self._open:
            self._run_then()

    def then(self, until: float, fn: Callable[[], None]) -> None:
        """Call `fn` once every call ended, or at the loop time `until` (the work that follows
        a request's answer, without a task of its own)."""
        self._then = fn
        if not self._open:
            self.loop.call_soon(self._run_then)
        else:
            self._then_timer = self.loop.call_at(until, self._run_then)

    def _run_then(self) -> None:
        fn, self._then = self._then, None
        if self._then_timer is not None:
            self._then_timer.cancel()
        if fn is not None:
            fn()

    @property
    def pending(self) -> list[str]:
        return [n for n in self.order if n in self._open]

    @property
    def waiting(self) -> bool:
        """Whether any call has not ended yet (`pending`, without building the list)."""
        return bool(self._open)

    async def changed(self, until: float) -> None:
        """Wait for a completion or the loop time `until`, whichever comes first."""
        loop = self.loop
        if until <= loop.time() or not self._open:
            return
        if self._alarm is None or self._alarm_at != until:
            # one timer per distinct `until` (a round waits on the same one several times)
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm_at = until
            self._alarm = loop.call_at(until, self._ring)
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _ring(self) -> None:
        self._alarm = None
        _settle(self._waiter)

    def close(self) -> None:
        """No more waits: drop the alarm (ending it early saves the heap its entry's turn)."""
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None

    def snapshot(self) -> Gathered:
        return Gathered(dict(self.results), dict(self.failed), self.pending)


@dataclass
class Round:
    """What a sloppy round asked: `hinted` maps each fallback asked to the primary it stands
    for; `skipped` holds primaries never asked (down in this node's view, replaced)."""

    gatherer: Gatherer
    primaries: list[str]
    hinted: dict[str, str]
    skipped: dict[str, str]
    fallbacks_count: bool = False  # the strict-counts-fallbacks bug

    def acks(self) -> tuple[int, int]:
        """(replies, replies from primaries). Strict mode asks no fallback, so there they are
        the same; a fallback never counts toward pr/pw."""
        res = self.gatherer.results
        if self.fallbacks_count:
            return len(res), len(res)
        prim = 0
        for n in self.primaries:  # a loop, not sum() of a generator: asked after every reply
            if n in res:
                prim += 1
        return len(res), prim

    def answered(self) -> list[str]:
        return [n for n in self.gatherer.order if n in self.gatherer.results]

    def replicas(self) -> list[dict]:
        out = []
        for n in self.answered():
            entry: dict[str, Any] = {"node": n, "primary": n in self.primaries}
            if n in self.hinted:
                entry["for"] = self.hinted[n]
            out.append(entry)
        return out

    def reasons(self) -> dict[str, str]:
        out = dict(self.skipped)
        out.update(self.gatherer.snapshot().failure_reasons())
        return out


@dataclass
class Coordinator(OnLoop):
    node_id: str
    ring: Ring
    replica: Replica
    call: Call
    default_r: int
    default_w: int
    is_up: Callable[[str], bool] = lambda _peer: True
    sloppy: bool = True
    read_repair_on: bool = True
    stats: dict[str, int] = field(default_factory=dict)
    bugs: frozenset[str] = frozenset()  # seeded defects (docs/bugs.md)
    context_key: bytes | None = None  # signs the contexts given to clients (clocks.seal_context)
    _background: set[asyncio.Task] = field(default_factory=set)

    # ---- the sloppy quorum ----

    async def sloppy_round(self, walk: list[str], make: MakeCall,
                           enough: Callable[[Round], bool], timeout: float) -> Round:
        """Ask the primaries of `walk` (and, in sloppy mode, fallbacks in place of primaries
        that are down, fail, or are slow) until `enough(round)` or the timeout."""
        n = self.ring.n
        primaries, spares = walk[:n], list(walk[n:])
        g = Gatherer(self._background, self._loop)
        # BUG strict-counts-fallbacks: strict mode takes fallbacks and counts them as primaries
        lax = "strict-counts-fallbacks" in self.bugs
        rnd = Round(g, primaries, {}, {}, fallbacks_count=lax)
        sloppy = self.sloppy or lax

        def next_spare() -> str | None:
            while spares:
                s = spares.pop(0)
                if self.is_up(s):
                    return s
            return None

        replaced: set[str] = set()
        for p in primaries:
            spare = next_spare() if sloppy and not self.is_up(p) else None
            if spare is None:
                g.add(p, make(p, None))  # up, strict mode, or nobody to stand in: try it
            else:
                rnd.skipped[p] = "down"
                replaced.add(p)
                rnd.hinted[spare] = p
                g.add(spare, make(spare, p))
        loop = self._loop
        start = loop.time()
        deadline, half = start + timeout, start + timeout / 2
        while not enough(rnd):
            now = loop.time()
            if now >= deadline:
                break
            if sloppy and spares:
                for target in list(g.order):
                    if target in replaced:
                        continue
                    if target in g.failed or (now >= half and target not in g.results):
                        spare = next_spare()
                        if spare is None:
                            break
                        replaced.add(target)
                        owner = rnd.hinted.get(target, target)
                        rnd.hinted[spare] = owner
                        g.add(spare, make(spare, owner))
            if not g.waiting:
                break
            await g.changed(half if now < half else deadline)
        g.close()
        return rnd

    def _remaining(self, deadline: float) -> float:
        return max(deadline - self._loop.time(), 0.001)

    # ---- reads ----

    async def get(self, key: str, r: int, pr: int, timeout: float) -> tuple[int, dict]:
        """(status, body) of a quorum read; 200, 404 or 503."""
        walk = self.ring.walk(self.ring.partition(key))
        deadline = self._loop.time() + timeout
        if "stale-read-r1" in self.bugs:
            r, pr = 1, min(pr, 1)  # BUG: answer with the first reply, whatever R is

        def make(node: str, owner: str | None) -> Awaitable[Any]:
            if node == self.node_id and owner is None:
                return ready(self.replica.read_blob(key), self._loop)  # its own copy: no message
            kind = "read" if owner is None else "read_hints"
            return self.call(node, kind, [key], self._remaining(deadline))

        def enough(rnd: Round) -> bool:
            total, prim = rnd.acks()
            return total >= r and prim >= pr

        rnd = await self.sloppy_round(walk, make, enough, timeout)
        total, prim = rnd.acks()
        if total < r or prim < pr:
            return 503, self._quorum_failed(rnd, r, pr, "r")
        results = rnd.gatherer.results
        try:
            merged = clocks.sync(*(clocks.decode_versions(b)
                                   for b in _distinct(results[n] for n in rnd.answered())))
        except ValueError as e:
            return 500, {"error": "internal", "message": f"a replica answered garbage: {e}"}
        if "lww" in self.bugs:
            merged = last_write_wins(merged)
        if self.read_repair_on:
            rnd.gatherer.then(deadline, functools.partial(self.read_repair, key, rnd, deadline))
        ctx = clocks.context_of(merged)
        live = [v for v in merged if not v.tombstone]
        body = {
            "key": key,
            "values": _RawJson([v.value for v in live]),
            "context": clocks.seal_context(ctx, self.context_key),
            "clock": clocks.vv_counters(ctx),
            "replicas": rnd.replicas(),
        }
        if not live:
            body["error"] = "not_found"
            body["message"] = "no value" if not merged else "deleted (every sibling is a tombstone)"
        return (200 if live else 404), body

    def read_repair(self, key: str, rnd: Round, deadline: float) -> int:
        """Once every asked replica answered (or the deadline passed: `Gatherer.then`), send
        the merged sibling set to each primary that answered with a different one. Returns how
        many were sent."""
        if len(_distinct(rnd.gatherer.results.values())) <= 1:
            return 0  # every replica answered the same bytes: the same set (canonical encoding)
        sets = {}
        for n, blob in list(rnd.gatherer.results.items()):
            try:
                sets[n] = clocks.decode_versions(blob)
            except ValueError:
                continue
        if not sets:
            return 0
        merged = clocks.sync(*sets.values())
        kind = "replicate"
        if "read-repair-clobbers" in self.bugs:
            # BUG: repair from this coordinator's own copy (or the first reply), replacing
            mine = self.node_id if self.node_id in sets else rnd.answered()[0]
            merged, kind = sets.get(mine, merged), "overwrite"
        blob = clocks.encode_versions(merged)
        stale = [n for n in rnd.primaries if n in sets and sets[n] != merged]
        for n in stale:
            self.stats["read_repairs_sent"] = self.stats.get("read_repairs_sent", 0) + 1
            self._spawn(self.call(n, kind, [key, blob], max(deadline - self._loop.time(), 1.0)))
        return len(stale)

    # ---- writes ----

    async def put(self, key: str, value: str | None, ctx: VV, tombstone: bool, w: int, pw: int,
                  timeout: float) -> tuple[int, dict]:
        """(status, body) of a quorum write (a tombstone when `tombstone`); 200 or 503."""
        walk = self.ring.walk(self.ring.partition(key))
        pref = walk[: self.ring.n]
        if self.node_id not in pref:
            return await self._forward(pref, key, value, ctx, tombstone, w, pw, timeout)
        deadline = self._loop.time() + timeout
        try:
            new, siblings, blob, durable = self.replica.coordinate_blob(key, value, ctx,
                                                                        tombstone)
        except SiblingLimit as e:
            return 413, {"error": "too_many_siblings", "message": str(e)}
        except ForgedContext as e:
            return 400, {"error": "bad_context", "message": str(e)}

        def make(node: str, owner: str | None) -> Awaitable[Any]:
            if node == self.node_id:
                return durable
            if owner is None:
                return self.call(node, "replicate", [key, blob], self._remaining(deadline))
            return self.call(node, "hint", [key, blob, owner], self._remaining(deadline))

        def enough(rnd: Round) -> bool:
            total, prim = rnd.acks()
            # the coordinator's own copy counts first: the new dot is this node's, and a node
            # that lost a dot it issued (acknowledged on fallbacks' hints, not yet fsynced
            # here) later issues higher counters whose contexts "cover" it, so the handed-off
            # version is dropped as obsolete (found by the power nemesis, issue 14)
            return total >= w and prim >= pw and self.node_id in rnd.gatherer.results

        rnd = await self.sloppy_round(walk, make, enough, timeout)
        total, prim = rnd.acks()
        if total:
            rnd.gatherer.then(deadline, functools.partial(self.hint_missed, key, siblings, rnd))
        if total < w or prim < pw:
            body = self._quorum_failed(rnd, w, pw, "w")
            got = rnd.gatherer.snapshot()
            # a replica that timed out or lost the connection may still have stored it
            maybe = sum(1 for e in got.failed.values() if e.reason in ("timeout", "lost"))
            body["written"] = total + maybe + len(got.outstanding)
            body["version"] = new.id
            return 503, body
        return 200, {
            "context": clocks.seal_context(new.clock(), self.context_key),
            "clock": clocks.vv_counters(new.clock()),
            "replicas": rnd.replicas(),
            "version": new.id,
        }

    def hint_missed(self, key: str, siblings: list[Version], rnd: Round) -> list[str]:
        """Once the write's calls have ended (or the deadline passed), keep a hint here for
        every primary that did not acknowledge it and that no fallback took a hint for.

        The sloppy quorum hints only for primaries replaced before the quorum was reached; a
        primary that failed or timed out after it (a crash the failure detector has not seen
        yet, a node just restarting, a slow peer) would otherwise miss the write for good
        unless anti-entropy or read repair found it. With this rule (Cassandra's) hinted
        handoff alone brings every primary up to date. Only for a write some replica stored:
        one that stored nothing was answered as certainly not done. Runs once the write's calls
        ended or its deadline passed (`Gatherer.then`). Returns the owners hinted."""
        acked = rnd.gatherer.results
        covered = {owner for spare, owner in rnd.hinted.items() if spare in acked}
        missed = [p for p in rnd.primaries
                  if p != self.node_id and p not in acked and p not in covered]
        for owner in missed:
            try:
                self._spawn(self.replica.hint(owner, key, siblings))  # durable in the background
            except ValueError:  # HintLimit, or an unreadable stored hint: nothing kept
                continue
            self.stats["hints_for_missed_acks"] = self.stats.get("hints_for_missed_acks", 0) + 1
        return missed

    async def _forward(self, pref: list[str], key: str, value: str | None, ctx: VV,
                       tombstone: bool, w: int, pw: int, timeout: float) -> tuple[int, dict]:
        body = {"key": key, "value": value, "context": clocks.encode_context(ctx),
                "tombstone": tombstone, "w": w, "pw": pw, "timeout_ms": int(timeout * 1000)}
        failed: dict[str, str] = {}
        # the remote coordinator answers by its own deadline; allow for the hop
        wait = timeout * 1.1 + 0.2
        for target in sorted(pref, key=lambda n: not self.is_up(n)):  # up ones first
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
            "primary_acks": 0, "answered": [], "failed": failed, "written": maybe,
        }

    # ---- admin ----

    async def replicas_view(self, key: str, timeout: float) -> dict:
        partition = self.ring.partition(key)
        walk = self.ring.walk(partition)
        pref, fallbacks = walk[: self.ring.n], walk[self.ring.n:]
        calls: dict[str, Awaitable[Any]] = {n: self.call(n, "read", [key], timeout) for n in pref}
        calls.update({f"hints:{n}": self.call(n, "hints_for", [key], timeout) for n in fallbacks})
        got = await self.gather(calls, len(calls), timeout)
        reasons = got.failure_reasons()
        replicas: dict[str, dict] = {}
        for n in pref:
            if n in got.results:
                try:
                    versions = clocks.decode_versions(got.results[n])
                except ValueError as e:
                    replicas[n] = {"ok": False, "primary": True, "error": str(e)}
                    continue
                replicas[n] = {"ok": True, "primary": True, **_versions_json(versions)}
            else:
                replicas[n] = {"ok": False, "primary": True,
                               "error": reasons.get(n, "timeout")}
        hints: dict[str, dict] = {}
        for n in fallbacks:
            tag = f"hints:{n}"
            if tag not in got.results:
                hints[n] = {"ok": False, "error": reasons.get(tag, "timeout")}
                continue
            held = []
            try:
                for owner, blob in sorted(dict(got.results[tag]).items()):
                    held.append({"owner": owner, **_versions_json(clocks.decode_versions(blob))})
            except (TypeError, ValueError) as e:
                hints[n] = {"ok": False, "error": f"bad hints reply: {e}"}
                continue
            hints[n] = {"ok": True, "held": held}
        return {"key": key, "partition": partition, "preference_list": pref,
                "fallbacks": fallbacks, "replicas": replicas, "hints": hints}

    # ---- helpers ----

    async def gather(self, calls: dict[str, Awaitable[Any]], needed: int,
                     timeout: float) -> Gathered:
        """Run the calls concurrently; return once `needed` succeeded, all ended, or time is up.
        Calls still running go on in the background (their frames are already sent)."""
        g = Gatherer(self._background, self._loop)
        for node, aw in calls.items():
            g.add(node, aw)
        deadline = self._loop.time() + max(timeout, 0)
        while len(g.results) < needed and g.waiting and self._loop.time() < deadline:
            await g.changed(deadline)
        g.close()
        return g.snapshot()

    def _spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw, loop=self._loop)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_swallow)

    def _quorum_failed(self, rnd: Round, q: int, pq: int, name: str) -> dict:
        total, prim = rnd.acks()
        if total < q:
            quorum, needed, acks, what = name, q, total, "replies"
        else:
            quorum, needed, acks, what = "p" + name, pq, prim, "replies from primaries"
        answered = rnd.answered()
        reasons = rnd.reasons()
        message = (f"{quorum}={needed} needed {needed} {what}, got {acks} "
                   f"({_describe(reasons)})")
        if rnd.hinted and quorum.startswith("p"):
            held = ", ".join(f"{f} for {o}" for f, o in sorted(rnd.hinted.items())
                             if f in rnd.gatherer.results)
            if held:
                message += f"; fallbacks do not count toward {quorum} (answered: {held})"
        return {
            "error": "quorum_failed", "message": message,
            "quorum": quorum, "needed": needed, "acks": acks, "primary_acks": prim,
            "answered": answered, "failed": reasons,
            "fallbacks": {f: o for f, o in rnd.hinted.items() if f in rnd.gatherer.results},
        }


def _versions_json(versions: list[clocks.Version]) -> dict:
    return {"clock": clocks.vv_counters(clocks.context_of(versions)),
            "versions": [clocks.version_json(v) for v in versions]}


def ready(result: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    """A future that already holds `result` (an answer known at once, with no task)."""
    fut = loop.create_future()
    fut.set_result(result)
    return fut


def _distinct(blobs: Any) -> list:
    """The distinct replies, in order: replicas that agree hold byte-identical sibling sets (the
    encoding is canonical), so each distinct one is decoded once, and agreement costs nothing."""
    out: list = []
    for b in blobs:
        if all(b != o for o in out):
            out.append(b)
    return out


def _settle(fut: asyncio.Future | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _swallow(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed background repair is not an error to log


def _describe(reasons: dict[str, str]) -> str:
    return ", ".join(f"{n}: {r}" for n, r in sorted(reasons.items())) or "no replica answered"


class _RawJson(list):
    """A list of JSON texts to be spliced into a response as they are (no re-encoding)."""


def dumps(body: dict) -> bytes:
    """JSON-encode a response body, splicing `_RawJson` lists in verbatim."""
    raw = [(k, v) for k, v in body.items() if isinstance(v, _RawJson)]
    if not raw:
        return _dumps(body)
    plain = {k: v for k, v in body.items() if not isinstance(v, _RawJson)}
    parts = [_dumps(plain)[:-1]]
    for k, v in raw:
        sep = b", " if len(parts) > 1 or plain else b""
        parts.append(b"%s%s: [%s]" % (sep, _dumps(k), ", ".join(v).encode()))
    return b"".join(parts) + b"}"


def _dumps(doc: Any) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(doc)
        except TypeError:  # a lone surrogate, or an int over 64 bits: json takes both
            pass
    return json.dumps(doc).encode()

