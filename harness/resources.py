"""Per-node CPU and memory, sampled about once a second into `resources.jsonl`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import psutil


class ResourceSampler:
    """Samples the processes `pids()` names; a restarted node is picked up under its new pid."""

    def __init__(self, path: Path, pids: Callable[[], dict[str, int]], now: Callable[[], int],
                 interval_s: float = 1.0) -> None:
        self.path = path
        self.pids = pids
        self.now = now
        self.interval_s = interval_s
        self._procs: dict[str, psutil.Process] = {}
        self.samples = 0

    def sample_once(self) -> list[dict]:
        rows = []
        for node, pid in self.pids().items():
            proc = self._procs.get(node)
            if proc is None or proc.pid != pid:
                try:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first call only sets the baseline
                except psutil.Error:
                    continue
                self._procs[node] = proc
                continue
            try:
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss
            except psutil.Error:
                self._procs.pop(node, None)
                continue
            rows.append({"time": self.now(), "node": node, "cpu_percent": cpu, "rss_bytes": rss})
        return rows

    async def run(self) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            try:
                while True:
                    self._write(fh)
                    await asyncio.sleep(self.interval_s)
            finally:
                # one last sample when the runner stops us (before teardown): a node that was
                # down at every tick (crashed, then restarted at the heal) is still recorded
                self._write(fh)

    def _write(self, fh: TextIO) -> None:
        for row in self.sample_once():
            fh.write(json.dumps(row) + "\n")
            self.samples += 1
        fh.flush()
