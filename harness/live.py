"""The live view of a running test: a rich panel on a terminal, a short line every few seconds
otherwise (CI logs), or nothing with --quiet."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass
class Stats:
    """Counters the workers update; the display reads them."""

    phase: str = "setup"
    ok: int = 0
    fail: int = 0
    info: int = 0
    _done: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def completed(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self._done.append(time.monotonic())

    def rate(self, window_s: float = 3.0) -> float:
        cutoff = time.monotonic() - window_s
        while self._done and self._done[0] < cutoff:
            self._done.popleft()
        return len(self._done) / window_s


def _line(stats: Stats, elapsed: float, limit: float, faults: list[str]) -> str:
    return (f"[{stats.phase}] {elapsed:5.1f}/{limit:.0f}s  {stats.rate():7.1f} ops/s  "
            f"ok {stats.ok}  fail {stats.fail}  info {stats.info}  "
            f"faults: {'; '.join(faults) or 'none'}")


def _table(stats: Stats, elapsed: float, limit: float, faults: list[str]) -> Table:
    table = Table(title="harness run", show_header=False, expand=False)
    table.add_row("phase", stats.phase)
    table.add_row("elapsed", f"{elapsed:.1f} s / {limit:.0f} s")
    table.add_row("ops/s", f"{stats.rate():.1f}")
    table.add_row("ok / fail / info", f"[green]{stats.ok}[/] / [yellow]{stats.fail}[/] / "
                                      f"[red]{stats.info}[/]")
    table.add_row("faults", "\n".join(faults) or "none")
    return table


async def display(stats: Stats, limit: float, faults: Callable[[], list[str]],
                  elapsed: Callable[[], float], mode: str = "auto",
                  line_every_s: float = 5.0) -> None:
    """Run until cancelled. mode: auto (rich on a TTY, lines otherwise), lines, or quiet."""
    if mode == "quiet":
        await asyncio.Event().wait()
    if mode == "auto" and sys.stdout.isatty():
        console = Console()
        with Live(_table(stats, 0, limit, []), console=console, refresh_per_second=4,
                  transient=False) as live:
            while True:
                await asyncio.sleep(0.5)
                live.update(_table(stats, elapsed(), limit, faults()))
    while True:
        await asyncio.sleep(line_every_s)
        print(_line(stats, elapsed(), limit, faults()), flush=True)
