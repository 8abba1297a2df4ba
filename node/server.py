"""Wiring: one node made of a clock, a random source, storage, transport, ring and coordinator."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import logging
import random
from collections.abc import Awaitable
from typing import Any

from node import clocks
from node.aae import SHAPE, AntiEntropy
from node.bugs import WriteBackStorage
from node.config import BACKGROUND_INTS, ClusterConfig
from node.coordinator import Coordinator, ready
from node.env import Clock, OnLoop
from node.handoff import Handoff
from node.membership import Membership
from node.reaper import Reaper
from node.replica import Replica
from node.ring import Ring
from node.storage import Storage
from node.tasks import Periodic
from node.transport import PeerError, Transport


def new_incarnation(storage: Storage, rng: random.Random) -> tuple[str, bool]:
    """This data directory's incarnation: made once, when the directory is empty, so that a wiped
    node never reuses the counters of its former self (Riak's KV679)."""
    inc = storage.meta_get("incarnation")
    if inc is not None:
        return inc, False
    inc = f"{rng.getrandbits(32):08x}"
    storage.meta_put("incarnation", inc)
    return inc, True


class Node(OnLoop):
    def __init__(self, config: ClusterConfig, node_id: str, clock: Clock, rng: random.Random,
                 storage: Storage, transport: Transport, log: logging.Logger) -> None:
        self.config = config
        self.id = node_id
        bugs = frozenset(config.bugs)  # seeded defects (docs/bugs.md); empty: the correct store
        if "ack-before-write" in bugs:
            storage = WriteBackStorage(storage)
        self.clock = clock
        self.rng = rng
        self.storage = storage
        self.transport = transport
        self.log = log
        self.incarnation, self.fresh = new_incarnation(storage, rng)
        self.actor = f"{node_id}.{self.incarnation}"
        self.ring = Ring.build([e.id for e in config.nodes], config.q, config.n,
                               vnode_preflists="preflist-vnodes" in bugs)
        self.others = tuple(e.id for e in config.nodes if e.id != node_id)
        self.peers = Membership(node_id, self.others, clock, self.incarnation,
                                ring_hash(self.ring), log)
        # counters for the report (`/admin/stats`)
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.replica = Replica(storage, self.actor, clock, config.clock_prune_max,
                               config.max_siblings, config.max_sibling_bytes,
                               config.max_hints_per_peer)
        self._send = getattr(transport, "send", None)  # TcpTransport's future-based request
        self.coordinator = Coordinator(node_id, self.ring, self.replica, self.send,
                                       config.r, config.w, is_up=self.peers.is_up,
                                       sloppy=config.sloppy_quorum,
                                       read_repair_on=config.read_repair, stats=self.stats,
                                       context_key=clocks.context_key(config.cluster_secret))
        timeout = config.request_timeout_ms / 1000
        self.handoff = Handoff(self.replica, self.call, self.peers.is_up, self.others,
                               config.handoff_batch, max(timeout, 1.0), self.stats, log)
        self.aae = AntiEntropy(node_id, self.ring, self.replica, self.call, self.peers.is_up,
                               clock, config.aae_max_keys, max(timeout, 2.0), self.stats, log)
        self.reaper = Reaper(node_id, self.ring, self.replica, self.call, clock,
                             config.tombstone_grace_ms, max(timeout, 1.0), self.stats, log)
        for part in (self.replica, self.coordinator, self.handoff, self.aae, self.reaper):
            part.bugs = bugs
        # trees are kept current on the write path only when anti-entropy runs
        hooks = [self.reaper.on_write] + ([self.aae.on_write] if config.anti_entropy else [])
        self.replica.write_hooks += hooks
        for key, blob in storage.items():  # rebuild the in-memory indexes
            try:
                siblings = clocks.decode_versions(blob)
            except ValueError as e:
                log.error("storage: key %r holds an unreadable sibling set: %s", key, e)
                continue
            for hook in hooks:
                hook(key, siblings, blob)
            # a data directory from before the dot lease: start above its own dots
            self.replica.dots.observe(clocks.next_counter(siblings, {}, self.actor) - 1)
        self.loops: list[Periodic] = []
        transport.set_handler(self.handle)

    # ---- background work ----

    def start_background(self) -> None:
        """Start gossip, probes, handoff, anti-entropy and reaping (not in unit tests that
        drive a node by hand)."""
        cfg = self.config
        plan = [("gossip", cfg.gossip_interval_ms, self.gossip_once),
                ("probe", cfg.probe_interval_ms, self.probe_once),
                ("handoff", cfg.handoff_interval_ms, self.handoff.run_once),
                ("reaper", cfg.reap_interval_ms, self.reaper.run_once)]
        if cfg.anti_entropy:
            plan.append(("aae", cfg.aae_interval_ms, self.aae.run_once))
        self.loops = [Periodic(name, ms / 1000, fn, self.rng, self.log) for name, ms, fn in plan]
        for loop in self.loops:
            loop.start()

    async def stop_background(self) -> None:
        for loop in self.loops:
            await loop.stop()

    async def gossip_once(self) -> None:
        if not self.others:
            return
        peer = self.rng.choice(self.others)
        timeout = min(self.config.request_timeout_ms, max(self.config.gossip_interval_ms, 200))
        try:
            reply = await self.call(peer, "gossip", self.peers.beat(), timeout / 1000)
        except PeerError:
            return
        self.peers.merge(reply)

    async def probe_once(self) -> None:
        stale = self.config.probe_interval_ms
        timeout = min(self.config.request_timeout_ms, max(stale, 200)) / 1000
        targets = self.peers.to_probe(stale)
        if targets:
            await asyncio.gather(*(self._ping(p, timeout) for p in targets))

    async def _ping(self, peer: str, timeout: float) -> None:
        with contextlib.suppress(PeerError):
            await self.call(peer, "ping", None, timeout)

    # ---- internode ----

    def send(self, peer: str, kind: str, body: Any, timeout: float) -> Awaitable[Any]:
        """`call` for the request path: over a transport that can (TCP), a future of the
        reply, with no coroutine or task per request."""
        if self._send is None or peer == self.id:
            return self.call(peer, kind, body, timeout)
        fut = self._send(peer, kind, body, timeout)
        fut.add_done_callback(functools.partial(self._saw, peer))
        return fut

    def _saw(self, peer: str, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        error = fut.exception()
        if error is None:
            self.peers.saw(peer, True)
        elif isinstance(error, PeerError):
            self.peers.saw(peer, False, error.reason)

    async def call(self, peer: str, kind: str, body: Any, timeout: float) -> Any:
        if peer == self.id:
            return await self.handle(self.id, kind, body)
        try:
            reply = await self.transport.request(peer, kind, body, timeout)
        except PeerError as e:
            self.peers.saw(peer, False, e.reason)
            raise
        self.peers.saw(peer, True)
        return reply

    def _kick(self, name: str) -> None:
        for loop in self.loops:
            if loop.name == name:
                loop.kick()

    def handle(self, sender: str, kind: str, body: Any) -> Awaitable[Any]:
        """Internode requests (and this node's own, short-circuited). The request path's two
        kinds answer with a future, no coroutine: a read at once, a replicate once durable."""
        try:
            if kind == "read":
                return ready(self.replica.read_blob(_key(body[0])), self._loop)
            if kind == "replicate":
                key, blob = _key(body[0]), _blob(body[1])
                return _then(self.replica.merge(key, clocks.decode_versions(blob)), True,
                             self._loop)
        except Exception as e:  # the same error reply as from any other kind
            fut = self._loop.create_future()
            fut.set_exception(e)
            return fut
        return self._handle(sender, kind, body)

    async def _handle(self, sender: str, kind: str, body: Any) -> Any:
        if kind == "hint":
            key, blob, owner = _key(body[0]), _blob(body[1]), _key(body[2])
            if owner not in self.others:
                raise ValueError(f"hint for unknown or own node {owner!r}")
            await self.replica.hint(owner, key, clocks.decode_versions(blob))
            self.stats["hints_stored"] += 1
            return True
        if kind == "overwrite":  # only sent by the read-repair-clobbers bug
            if "read-repair-clobbers" not in self.coordinator.bugs:
                raise ValueError("overwrite is not a request of the correct store")
            key, blob = _key(body[0]), _blob(body[1])
            await self.replica.overwrite(key, clocks.decode_versions(blob))
            return True
        if kind == "read_hints":  # a fallback's answer to a read: what it holds in hints
            held = self.replica.hints_for(_key(body[0]), list(self.others))
            return clocks.encode_versions(
                clocks.sync(*(clocks.decode_versions(b) for b in held.values())))
        if kind == "hints_for":
            return self.replica.hints_for(_key(body[0]), list(self.others))
        if kind == "read_many":
            if not isinstance(body, list):
                raise ValueError("read_many needs a list of keys")
            return [self.replica.read_blob(_key(k)) for k in body]
        if kind == "replicate_many":
            if not isinstance(body, list):
                raise ValueError("replicate_many needs a list of [key, blob]")
            waits = [self.replica.merge(_key(k), clocks.decode_versions(_blob(b)))
                     for k, b in body]
            for w in waits:
                await w
            return True
        if kind == "aae":
            return self.aae.answer(body)
        if kind == "aae_roots":
            return await self.aae.differing(body)
        if kind == "reap":
            key, expected = _key(body[0]), _blob(body[1])
            durable = self.replica.reap(key, expected)
            if durable is None:
                return False
            await durable
            self.stats["tombstones_reaped"] += 1
            return True
        if kind == "coord_put":
            if not isinstance(body, dict):
                raise ValueError("coord_put needs a map")
            ctx = clocks.decode_context(body.get("context"))
            value = body.get("value")
            status, reply = await self.coordinator.put(
                _key(body.get("key")), None if value is None else str(value), ctx,
                bool(body.get("tombstone")), int(body["w"]), int(body.get("pw", 0)),
                int(body["timeout_ms"]) / 1000)
            return [status, reply]
        if kind == "gossip":
            self.peers.merge(body)
            if self.peers.restarted:
                self._kick("probe")
            return self.peers.beat()
        if kind == "ping":
            return {"id": self.id, "incarnation": self.incarnation,
                    "generation": self.peers.generation}
        raise ValueError(f"unknown request kind {kind!r}")

    # ---- views ----

    def stats_view(self) -> dict:
        out = dict(self.stats)
        out["hints_pending"] = len(self.storage.hint_keys())
        out["tombstones_held"] = len(self.reaper.tombstoned)
        return out

    def status(self) -> dict:
        summary = self.ring.summary()
        cfg = self.config
        return {
            "id": self.id,
            "incarnation": self.incarnation,
            "actor": self.actor,
            "ring": {"q": summary["q"], "n": summary["n"],
                     "partitions_owned": summary["partitions_owned"][self.id],
                     "owners": summary["partitions_owned"], "hash": ring_hash(self.ring)},
            "peers": self.peers.snapshot(),
            "membership": self.peers.membership(),
            "faults": {"drop_from": sorted(self.transport.drop_from)},
            "settings": {"r": cfg.r, "w": cfg.w, "request_timeout_ms": cfg.request_timeout_ms,
                         "fsync": cfg.fsync, "sloppy_quorum": cfg.sloppy_quorum,
                         "clock_prune_max": cfg.clock_prune_max,
                         "read_repair": cfg.read_repair, "anti_entropy": cfg.anti_entropy,
                         **{name: getattr(cfg, name) for name in BACKGROUND_INTS}},
            "stats": self.stats_view(),
            "bugs": list(cfg.bugs),
        }

    def aae_status(self) -> dict:
        return {"enabled": self.config.anti_entropy,
                "interval_ms": self.config.aae_interval_ms,
                "shape": SHAPE.as_list(),
                "root_messages": self.aae.root_messages,
                "root_bytes": self.aae.root_bytes,
                "partitions": self.aae.status()}


STAT_NAMES = ("hints_stored", "hints_handed_off", "read_repairs_sent", "aae_exchanges",
              "aae_keys_repaired", "tombstones_reaped")


def ring_hash(ring: Ring) -> str:
    """A short fingerprint of the ring (nodes, q, n, owners): equal on nodes that agree."""
    text = "|".join([",".join(ring.nodes), str(ring.q), str(ring.n), ",".join(ring.owners)])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _then(aw: Awaitable[Any], result: Any, loop: asyncio.AbstractEventLoop) -> Awaitable[Any]:
    """`result` once `aw` completes (its error if it fails), as a future when `aw` is one."""
    if not isinstance(aw, asyncio.Future):
        async def wait() -> Any:
            await aw
            return result
        return wait()
    out = loop.create_future()

    def done(f: asyncio.Future) -> None:
        if out.done():
            return
        if f.cancelled():
            out.cancel()
        elif f.exception() is not None:
            out.set_exception(f.exception())
        else:
            out.set_result(result)

    aw.add_done_callback(done)
    return out


def _blob(raw: Any) -> bytes:
    if not isinstance(raw, bytes):
        raise ValueError("expected a binary sibling set")
    return raw


def _key(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("key must be a string")
    return raw


async def serve(node: Node, host: str, client_port: int, stop: asyncio.Event) -> None:
    """Run the node's transport and HTTP API until `stop` is set."""
    from node.http_api import make_server

    await node.transport.start()
    node.start_background()
    http = make_server(node)
    await http.start(host, client_port)
    gc.freeze()  # start-up objects (modules, config) need no scanning by later collections
    node.log.info("node %s (incarnation %s%s) serving clients on %s:%d",
                  node.id, node.incarnation, ", new data directory" if node.fresh else "",
                  host, client_port)
    try:
        await stop.wait()
    finally:
        node.log.info("shutting down")
        await node.stop_background()
        await http.close()
        await node.transport.close()
        await node.storage.close()
