"""A coordinator acknowledges a write only once its own copy is durable (issue 14).

The new version's dot is the coordinator's. If W were met by other replicas (or fallbacks'
hints) while its own copy was still on its way to disk, a power cut could take that copy: the
restarted node then issues higher counters, whose contexts "cover" the lost dot, and when the
hints hand the version back it is dropped as obsolete, an acknowledged write lost. The power
nemesis found this (suites/power.toml, fsync = "always").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable

from test_node_inprocess import LOG, MemNet, MemTransport

from node.config import ClusterConfig, NodeEntry
from node.env import ManualClock
from node.server import Node
from node.storage import MemoryStorage


class SlowDisk(MemoryStorage):
    """Writes are visible at once but durable only when `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    def put(self, key: str, blob: bytes) -> Awaitable[None]:
        super().put(key, blob)
        return asyncio.ensure_future(self.release.wait())


def test_no_ack_before_the_coordinators_own_copy_is_durable() -> None:
    async def main() -> None:
        entries = tuple(NodeEntry(f"n{i}", "sim", 1, 2 + i) for i in range(1, 4))
        cfg = ClusterConfig(nodes=entries, n=3, r=2, w=2, q=32, sloppy_quorum=True)
        net, clock, rng = MemNet(), ManualClock(wall_ms=1_000), random.Random(3)
        slow = SlowDisk()
        nodes = {e.id: Node(cfg, e.id, clock, rng, slow if e.id == "n1" else MemoryStorage(),
                            MemTransport(net, e.id), LOG) for e in entries}
        put = asyncio.create_task(nodes["n1"].coordinator.put("k", '"a"', {}, False, 2, 0, 2.0))
        await asyncio.sleep(0.2)  # n2 and n3 have answered long since
        assert not put.done(), "acknowledged before the coordinator's own copy was durable"
        slow.release.set()
        status, body = await asyncio.wait_for(put, 2.0)
        assert status == 200
        assert "n1" in {r["node"] for r in body["replicas"]}

    asyncio.run(main())
