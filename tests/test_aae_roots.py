"""Anti-entropy compares every shared partition's root in one message per peer, and runs the
Merkle exchange only for partitions that differ (on in-process nodes: test_node_inprocess)."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from test_node_inprocess import make_cluster

from node.ring import Ring
from node.server import Node


def count_kinds(nodes: dict[str, Node]) -> collections.Counter[str]:
    """Wrap every node's transport so that each request's kind is counted."""
    kinds: collections.Counter[str] = collections.Counter()
    for node in nodes.values():
        sent = node.transport.request

        async def request(peer: str, kind: str, body: Any, timeout: float,
                          sent: Any = sent) -> Any:
            kinds[kind] += 1
            return await sent(peer, kind, body, timeout)

        node.transport.request = request  # type: ignore[method-assign]
    return kinds


def peers_of(ring: Ring, me: str) -> set[str]:
    return {p for part in range(ring.q) for p in ring.walk(part)[: ring.n]
            if me in ring.walk(part)[: ring.n]} - {me}


def test_agreeing_replicas_cost_one_message_per_peer_and_a_difference_one_exchange() -> None:
    async def main() -> None:
        nodes, net, _clock = make_cluster(size=5, sloppy=False)
        n1 = nodes["n1"]
        for i in range(40):
            status, _ = await n1.coordinator.put(f"k{i}", '"v"', {}, False, 3, 0, 1.0)
            assert status == 200
        kinds = count_kinds(nodes)
        assert await n1.aae.run_once() == 0
        peers = peers_of(n1.ring, "n1")
        assert kinds == {"aae_roots": len(peers)} and n1.aae.root_messages == len(peers)
        assert n1.aae.root_bytes > 0
        exchanges = sum(info.exchanges for info in n1.aae.info.values())
        assert exchanges == sum(len(set(n1.ring.walk(p)[:3]) - {"n1"}) for p in n1.aae.trees)

        # one key written while its other replicas were away: only its partition is exchanged
        key = next(f"x{i}" for i in range(100) if "n1" in n1.ring.walk(
            n1.ring.partition(f"x{i}"))[:3])
        owners = n1.ring.walk(n1.ring.partition(key))[:3]
        net.down = set(owners) - {"n1"}
        status, _ = await n1.coordinator.put(key, '"late"', {}, False, 1, 0, 1.0)
        assert status == 200
        net.down = set()
        kinds.clear()
        assert await n1.aae.run_once() == len(owners) - 1
        assert kinds["aae_roots"] == len(peers)
        assert 0 < kinds["aae"] <= 4 * (len(owners) - 1)  # root, children.., entries per peer
        for other in set(owners) - {"n1"}:
            assert nodes[other].replica.read(key), f"{other} did not get {key} from anti-entropy"
        kinds.clear()
        assert await n1.aae.run_once() == 0
        assert kinds == {"aae_roots": len(peers)}

    asyncio.run(main())


@pytest.mark.parametrize("body", ["roots", [[1]], [["p", b"x"]], [[True, b"x"]], [[1, "hex"]]])
def test_a_malformed_roots_request_is_refused_with_a_reason(body: Any) -> None:
    async def main() -> None:
        nodes, _net, _clock = make_cluster(size=3)
        with pytest.raises(ValueError, match="aae_roots"):
            await nodes["n2"].handle("n1", "aae_roots", body)
        assert await nodes["n2"].handle("n1", "aae_roots", [[0, b"\0" * 16]]) in ([], [0])

    asyncio.run(main())


def test_a_peer_that_does_not_know_root_comparison_gets_every_partition_exchanged() -> None:
    async def main() -> None:
        nodes, net, _clock = make_cluster(size=3)  # n=3: every node replicates every partition
        old = net.handlers["n2"]

        def before_aae_roots(sender: str, kind: str, body: Any) -> Any:
            if kind == "aae_roots":  # what a node of the version before answers
                raise ValueError(f"unknown request kind {kind!r}")
            return old(sender, kind, body)

        net.handlers["n2"] = before_aae_roots
        net.down = {"n2", "n3"}
        status, _ = await nodes["n1"].coordinator.put("k", '"v"', {}, False, 1, 0, 1.0)
        assert status == 200
        net.down = set()
        kinds = count_kinds(nodes)
        assert await nodes["n1"].aae.run_once() == 2  # n2 through the old exchange, n3 the new
        assert nodes["n2"].replica.read("k") and nodes["n3"].replica.read("k")
        assert kinds["aae"] >= len(nodes["n1"].aae.trees)  # every partition with n2

    asyncio.run(main())


def test_a_round_hashes_a_write_backlog_in_slices_with_pauses_between(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing the segments written since the last round, several ms of CPU after a busy
    interval, pauses every HASH_SLICE segments (so requests on this node and the other processes
    get the CPU), gives the same roots, and its pauses stay under a quarter of the timeout."""
    from node import aae

    pauses: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float, *args: Any) -> Any:
        pauses.append(delay)
        return await sleep(delay, *args)

    async def main() -> None:
        nodes, _net, _clock = make_cluster(size=3)
        n1 = nodes["n1"]
        writes = [n1.coordinator.put(f"k{i}", f'"{i}"', {}, False, 3, 0, 5.0) for i in range(600)]
        assert {s for s, _ in await asyncio.gather(*writes)} == {200}
        parts = sorted(n1.aae.trees)
        backlog = sum(n1.aae.trees[p].pending for p in parts)
        assert backlog > 4 * aae.HASH_SLICE

        ticks = 0
        stop = False

        async def other_work() -> None:  # a client request's share of the loop
            nonlocal ticks
            while not stop:
                ticks += 1
                await sleep(0)

        other = asyncio.ensure_future(other_work())
        await sleep(0)
        monkeypatch.setattr(asyncio, "sleep", recorded)
        roots = await n1.aae.roots(parts)
        stop = True
        await other
        slices = backlog // aae.HASH_SLICE - 1
        assert len(pauses) >= slices and set(pauses) == {aae.HASH_PAUSE_S}
        assert ticks >= slices  # the loop ran between slices
        assert roots == [[p, n1.aae.trees[p].root] for p in parts]  # the same roots
        assert all(n1.aae.trees[p].pending == 0 for p in parts)

        # a backlog whose pauses would pass a quarter of the timeout hashes without more pauses
        for i in range(600):
            n1.aae.on_write(f"k{i}", [], b"changed %d" % i)
        n1.aae.timeout = 4 * 3 * aae.HASH_PAUSE_S
        pauses.clear()
        await n1.aae.roots(parts)
        assert len(pauses) >= slices and sum(pauses) == pytest.approx(3 * aae.HASH_PAUSE_S)

    asyncio.run(main())
