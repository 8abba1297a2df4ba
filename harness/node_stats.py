"""Each node's `/admin/stats` counters, sampled about once a second into `stats.jsonl`.

One shared HTTP session, one node after another, with a short timeout: the sampler adds at most
one small request per node per second, so it does not disturb the workload. A node that does not
answer in time (killed, paused) is skipped for that tick.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp

# the counters docs/node-api.md names; any other integer field the node adds is kept too
COUNTERS = ("hints_stored", "hints_handed_off", "hints_pending", "read_repairs_sent",
            "aae_exchanges", "aae_keys_repaired", "tombstones_reaped", "tombstones_held")


def stats_row(time_ns: int, node: str, answer: Any) -> dict[str, Any] | None:
    """The `stats.jsonl` row for one node's answer, or None if the answer has no counters."""
    if not isinstance(answer, dict):
        return None
    counters = {k: v for k, v in answer.items()
                if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                and k not in ("time", "node")}
    if not counters:
        return None
    return {"time": time_ns, "node": node, **counters}


class StatsSampler:
    """What every sampler shares: the row (or a skip) for each node's answer, and the file."""

    def __init__(self, path: Path, now: Callable[[], int], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.path = path
        self.now = now
        self.interval_s = interval_s
        self.samples = 0
        self.skipped = 0

    def _row(self, node: str, answer: Any) -> dict[str, Any] | None:
        row = stats_row(self.now(), node, answer)
        if row is None:
            self.skipped += 1
        return row

    def _write(self, fh: TextIO, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
            self.samples += 1
        fh.flush()  # every tick: a crash keeps what was seen


class NodeStatsSampler(StatsSampler):
    """Polls `urls()` (node id -> client base URL) every `interval_s`, appending rows to `path`."""

    def __init__(self, path: Path, urls: Callable[[], dict[str, str]], now: Callable[[], int],
                 interval_s: float = 1.0, timeout_s: float = 0.5,
                 headers: dict[str, str] | None = None) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be positive")
        super().__init__(path, now, interval_s)
        self.urls = urls
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.headers = headers or {}

    async def sample_once(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        rows = []
        for node, base in self.urls().items():
            try:
                async with session.get(f"{base.rstrip('/')}/admin/stats",
                                       timeout=self.timeout) as resp:
                    answer = await resp.json() if resp.status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                answer = None
            row = self._row(node, answer)
            if row is not None:
                rows.append(row)
        return rows

    async def run(self) -> None:
        """Sample until cancelled; flushed every tick, so a crash keeps what was seen."""
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, headers=self.headers) as session:
            with self.path.open("a", encoding="utf-8") as fh:
                next_tick = time.monotonic()
                while True:
                    self._write(fh, await self.sample_once(session))
                    # keep a steady cadence; when a slow tick overran, skip the missed ones
                    next_tick += self.interval_s
                    now = time.monotonic()
                    if next_tick < now:
                        next_tick = now
                    await asyncio.sleep(next_tick - now)
