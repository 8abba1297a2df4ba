"""The node's view of the outside world that is not network or disk: time and randomness.

Protocol code gets these objects handed in, never calls time.time() or random itself, so that a
simulator can run the same code on virtual time with a seeded random source.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from typing import Protocol


class OnLoop:
    """For objects that live on one event loop and schedule on it per request: `_loop` is
    asked for once, on first use (on 3.11 each asyncio.get_running_loop() is a getpid()
    syscall, a few percent of a request's CPU)."""

    @functools.cached_property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Wall-clock time in ms (may jump; used for clock-entry timestamps and /admin/clock)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (used for durations)."""
        ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests and the simulator)."""

    def __init__(self, wall_ms: int = 0, monotonic: float = 0.0) -> None:
        self._wall_ms = wall_ms
        self._mono = monotonic

    def wall_ms(self) -> int:
        return self._wall_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall_ms += int(seconds * 1000)


def system_random() -> random.Random:
    """A random source seeded by the OS, for real processes."""
    return random.Random()
