"""`stats.jsonl` on the simulator: each live node's `/admin/stats` counters, about once a second.

The real runs' `harness.node_stats.NodeStatsSampler` asks every node over HTTP once a (real)
second; here the same rows (`harness.node_stats.stats_row`) come from the in-process nodes'
`stats_view()` (what `/admin/stats` answers) once a virtual second, stamped with the history's
virtual clock. A node that would not answer (killed, paused: the real sampler's request times
out) is skipped for that tick, as there. It only reads the nodes, so the history is the same with
or without it, and the file is the same for the same seed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.node_stats import StatsSampler


class SimStatsSampler(StatsSampler):
    """Samples `nodes()` (node id -> its live `Node`, or None when down or paused) every
    `interval_s` of virtual time into `path`."""

    def __init__(self, path: Path, nodes: Callable[[], dict[str, Any]], now: Callable[[], int],
                 interval_s: float = 1.0) -> None:
        super().__init__(path, now, interval_s)
        self.nodes = nodes

    def sample_once(self) -> list[dict[str, Any]]:
        rows = []
        for node_id, node in self.nodes().items():
            row = self._row(node_id, None if node is None else node.stats_view())
            if row is not None:
                rows.append(row)
        return rows

    async def run(self) -> None:
        """Sample until cancelled (the runner cancels it at teardown)."""
        loop = asyncio.get_running_loop()
        with self.path.open("a", encoding="utf-8") as fh:
            next_tick = loop.time()
            while True:
                self._write(fh, self.sample_once())
                next_tick += self.interval_s
                await asyncio.sleep(next_tick - loop.time())
