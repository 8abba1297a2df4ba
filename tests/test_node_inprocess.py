"""The same node code in one process, on in-memory storage and network, with a seeded random
source and a manual clock: the seam a deterministic simulator will use."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from typing import Any

from node import clocks
from node.config import ClusterConfig, NodeEntry
from node.env import ManualClock
from node.server import Node
from node.storage import MemoryStorage
from node.transport import Handler, PeerError

LOG = logging.getLogger("test")


class MemNet:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.down: set[str] = set()
        self.transports: dict[str, MemTransport] = {}


class MemTransport:
    def __init__(self, net: MemNet, me: str) -> None:
        self.net, self.me = net, me
        self.drop_from: frozenset[str] = frozenset()
        net.transports[me] = self

    def set_handler(self, handler: Handler) -> None:
        self.net.handlers[self.me] = handler

    def set_drop_from(self, peers: Iterable[str]) -> None:
        self.drop_from = frozenset(peers)

    async def request(self, peer: str, kind: str, body: Any, timeout: float) -> Any:
        if peer in self.net.down:
            raise PeerError(peer, "unreachable")
        if self.me in self.net.transports[peer].drop_from:
            await asyncio.sleep(timeout)
            raise PeerError(peer, "timeout")
        try:
            return await self.net.handlers[peer](self.me, kind, body)
        except Exception as e:
            raise PeerError(peer, "remote", str(e)) from e

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def make_cluster(size: int = 4, seed: int = 7, sloppy: bool = True
                 ) -> tuple[dict[str, Node], MemNet, ManualClock]:
    entries = tuple(NodeEntry(f"n{i}", "sim", 1, 2 + i) for i in range(1, size + 1))
    cfg = ClusterConfig(nodes=entries, n=3, r=2, w=2, q=32, sloppy_quorum=sloppy)
    net, clock, rng = MemNet(), ManualClock(wall_ms=1_000), random.Random(seed)
    nodes = {e.id: Node(cfg, e.id, clock, rng, MemoryStorage(), MemTransport(net, e.id), LOG)
             for e in entries}
    return nodes, net, clock


def test_quorum_logic_in_one_process() -> None:
    async def main() -> None:
        nodes, net, clock = make_cluster()
        n1 = nodes["n1"].coordinator
        status, body = await n1.put("k", '"a"', {}, False, 2, 0, 1.0)
        assert status == 200
        clock.advance(1)
        status, body = await nodes["n4"].coordinator.put("k", '"b"', {}, False, 2, 0, 1.0)
        assert status == 200
        status, got = await nodes["n2"].coordinator.get("k", 2, 0, 1.0)
        assert status == 200 and sorted(got["values"]) == ['"a"', '"b"']

        # two of three replicas down: the one fallback of a 4-node ring takes a hint, so w=2
        # succeeds, but pw=2 cannot (a fallback is no primary)
        pref = nodes["n1"].ring.preference_list("k")
        fallback = nodes["n1"].ring.fallbacks("k")[0]
        net.down.update(pref[1:])
        ctx = clocks.decode_context(got["context"])
        status, ok = await nodes[pref[0]].coordinator.put("k", '"c"', ctx, False, 2, 0, 0.5)
        assert status == 200, ok
        assert {"node": fallback, "primary": False, "for": pref[1]} in ok["replicas"]
        assert nodes[fallback].storage.hint_keys() == [(pref[1], "k")]
        status, fail = await nodes[pref[0]].coordinator.put("k", '"c2"', ctx, False, 2, 2, 0.5)
        assert status == 503 and fail["quorum"] == "pw" and fail["primary_acks"] == 1
        assert fail["fallbacks"] == {fallback: pref[1]} and fail["written"] == 2
        net.down.clear()
        for peer in pref[1:]:  # what the periodic probe would find
            nodes[pref[0]].peers.saw(peer, True)

        # a partition (frames dropped) makes the replica time out instead
        nodes[pref[1]].transport.set_drop_from([pref[0]])
        nodes[pref[2]].transport.set_drop_from([pref[0]])
        status, fail = await nodes[pref[0]].coordinator.put("k", '"d"', {}, False, 3, 0, 0.05)
        assert status == 503 and set(fail["failed"].values()) == {"timeout"}
        # itself, the fallback that took a hint after half the timeout, two that may have it
        assert fail["written"] == 4 and fail["fallbacks"] == {fallback: pref[1]}

    asyncio.run(asyncio.wait_for(main(), 10))


def test_same_seed_same_incarnations() -> None:
    a, _, _ = make_cluster(seed=3)
    b, _, _ = make_cluster(seed=3)
    assert [n.actor for n in a.values()] == [n.actor for n in b.values()]


def test_strict_mode_never_asks_a_fallback() -> None:
    async def main() -> None:
        nodes, net, _ = make_cluster(sloppy=False)
        pref = nodes["n1"].ring.preference_list("k")
        net.down.update(pref[1:])
        status, fail = await nodes[pref[0]].coordinator.put("k", '"c"', {}, False, 2, 0, 0.5)
        assert status == 503 and fail["acks"] == 1 and fail["written"] == 1
        assert fail["answered"] == [pref[0]] and fail["quorum"] == "w"
        assert set(fail["failed"]) == set(pref[1:])
        assert all(not nodes[n].storage.hint_keys() for n in nodes if n not in pref)
        # the coordinator itself keeps the write for the primaries that missed it
        await asyncio.sleep(0.05)
        assert sorted(nodes[pref[0]].storage.hint_keys()) == sorted((p, "k") for p in pref[1:])

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_primary_that_misses_an_acknowledged_write_gets_a_hint() -> None:
    """W = 2 is met by two primaries; the third times out after the answer. No fallback was
    asked, so without the coordinator's own hint nothing but anti-entropy would repair it."""
    async def main() -> None:
        nodes, _, _ = make_cluster()
        pref = nodes["n1"].ring.preference_list("k")
        coord, late = nodes[pref[0]], pref[2]
        nodes[late].transport.set_drop_from([pref[0]])
        status, ok = await coord.coordinator.put("k", '"a"', {}, False, 2, 0, 0.2)
        assert status == 200 and {r["node"] for r in ok["replicas"]} == set(pref[:2])
        assert nodes[late].replica.read("k") == []
        await asyncio.sleep(0.3)  # past the write's deadline: the missed primary is hinted
        assert coord.storage.hint_keys() == [(late, "k")]
        assert coord.stats["hints_for_missed_acks"] == 1
        nodes[late].transport.set_drop_from([])
        assert await coord.handoff.deliver(late) == 1
        assert [v.value for v in nodes[late].replica.read("k")] == ['"a"']
        assert coord.storage.hint_keys() == []

    asyncio.run(asyncio.wait_for(main(), 10))
