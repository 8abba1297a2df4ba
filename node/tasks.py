"""Background loops started and stopped with the node: one round every interval, with jitter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs `round()` about every `interval` seconds (uniformly jittered by +-25% so that the
    nodes' loops do not fall into step), one round at a time; `kick()` starts the next round now.
    A failing round is logged and the loop goes on."""

    def __init__(self, name: str, interval: float, round_fn: Callable[[], Awaitable[None]],
                 rng: random.Random, log: logging.Logger) -> None:
        self.name = name
        self.interval = interval
        self.round_fn = round_fn
        self.rng = rng
        self.log = log
        self.rounds = 0
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            delay = self.interval * (0.75 + 0.5 * self.rng.random())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                await self.round_fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("%s: round failed", self.name)
            self.rounds += 1
