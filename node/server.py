"""Wiring: one node made of a clock, a random source, storage, transport, ring and coordinator."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from node import clocks
from node.config import ClusterConfig
from node.coordinator import Coordinator
from node.env import Clock
from node.replica import Replica
from node.ring import Ring
from node.storage import Storage
from node.transport import PeerError, Transport


@dataclass
class PeerView:
    """What this node believes about each peer. Part 1 only records the last outcome of a
    request; issue 3's failure detector and gossip replace it behind the same `snapshot()`."""

    peers: tuple[str, ...]
    clock: Clock
    state: dict[str, dict] = field(default_factory=dict)

    def saw(self, peer: str, ok: bool, reason: str = "") -> None:
        entry = self.state.setdefault(peer, {})
        entry["up"] = ok
        entry["last_ms"] = self.clock.wall_ms()
        if not ok:
            entry["last_error"] = reason

    def snapshot(self) -> dict[str, dict]:
        return {p: {"up": self.state.get(p, {}).get("up", True), **self.state.get(p, {})}
                for p in self.peers}


def new_incarnation(storage: Storage, rng: random.Random) -> tuple[str, bool]:
    """This data directory's incarnation: made once, when the directory is empty, so that a wiped
    node never reuses the counters of its former self (Riak's KV679)."""
    inc = storage.meta_get("incarnation")
    if inc is not None:
        return inc, False
    inc = f"{rng.getrandbits(32):08x}"
    storage.meta_put("incarnation", inc)
    return inc, True


class Node:
    def __init__(self, config: ClusterConfig, node_id: str, clock: Clock, rng: random.Random,
                 storage: Storage, transport: Transport, log: logging.Logger) -> None:
        self.config = config
        self.id = node_id
        self.clock = clock
        self.rng = rng
        self.storage = storage
        self.transport = transport
        self.log = log
        self.incarnation, self.fresh = new_incarnation(storage, rng)
        self.actor = f"{node_id}.{self.incarnation}"
        self.ring = Ring.build([e.id for e in config.nodes], config.q, config.n)
        self.peers = PeerView(tuple(e.id for e in config.nodes if e.id != node_id), clock)
        self.replica = Replica(storage, self.actor, clock, config.clock_prune_max)
        self.coordinator = Coordinator(node_id, self.ring, self.replica, self.call,
                                       config.r, config.w)
        transport.set_handler(self.handle)

    async def call(self, peer: str, kind: str, body: Any, timeout: float) -> Any:
        if peer == self.id:
            return await self.handle(self.id, kind, body)
        try:
            reply = await self.transport.request(peer, kind, body, timeout)
        except PeerError as e:
            self.peers.saw(peer, e.reason == "remote", e.reason)
            raise
        self.peers.saw(peer, True)
        return reply

    async def handle(self, sender: str, kind: str, body: Any) -> Any:
        """Internode requests (and this node's own, short-circuited)."""
        if kind == "read":
            return self.replica.read_blob(_key(body[0]))
        if kind == "replicate":
            key, blob = _key(body[0]), body[1]
            if not isinstance(blob, bytes):
                raise ValueError("replicate needs a binary sibling set")
            await self.replica.merge(key, clocks.decode_versions(blob))
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
        if kind == "ping":
            return {"id": self.id, "incarnation": self.incarnation}
        raise ValueError(f"unknown request kind {kind!r}")

    def status(self) -> dict:
        summary = self.ring.summary()
        return {
            "id": self.id,
            "incarnation": self.incarnation,
            "actor": self.actor,
            "ring": {"q": summary["q"], "n": summary["n"],
                     "partitions_owned": summary["partitions_owned"][self.id],
                     "owners": summary["partitions_owned"]},
            "peers": self.peers.snapshot(),
            "faults": {"drop_from": sorted(self.transport.drop_from)},
            "settings": {"r": self.config.r, "w": self.config.w,
                         "request_timeout_ms": self.config.request_timeout_ms,
                         "fsync": self.config.fsync, "sloppy_quorum": self.config.sloppy_quorum,
                         "clock_prune_max": self.config.clock_prune_max},
            "bugs": list(self.config.bugs),
        }


def _key(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("key must be a string")
    return raw


async def serve(node: Node, host: str, client_port: int, stop: asyncio.Event) -> None:
    """Run the node's transport and HTTP API until `stop` is set."""
    from node.http_api import make_app

    await node.transport.start()
    app = make_app(node)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, client_port, reuse_address=True, backlog=1024)
    await site.start()
    gc.freeze()  # start-up objects (modules, config) need no scanning by later collections
    node.log.info("node %s (incarnation %s%s) serving clients on %s:%d",
                  node.id, node.incarnation, ", new data directory" if node.fresh else "",
                  host, client_port)
    try:
        await stop.wait()
    finally:
        node.log.info("shutting down")
        await runner.cleanup()
        await node.transport.close()
        await node.storage.close()
