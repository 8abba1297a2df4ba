"""Hinted handoff: push the hints this node holds as a fallback to their owners.

Every `handoff_interval_ms`, for each owner that this node's failure detector holds up, send at
most `handoff_batch` hints (a few at a time) as ordinary `replicate` requests; the owner merges
them and answers only once the merge is durable. A hint is deleted only after that answer, and
only if it did not change meanwhile (a newer hinted write for the same key stays, and goes in
the next round). A per-owner cursor walks the hints in key order and wraps around, so a hint the
owner keeps refusing does not block the others; after a crash the walk simply starts again,
since delivered hints are gone from disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from node.coordinator import Call
from node.replica import Replica
from node.transport import PeerError

IN_FLIGHT = 8  # hints on the wire per owner at once


@dataclass
class Handoff:
    replica: Replica
    call: Call
    is_up: Callable[[str], bool]
    owners: tuple[str, ...]
    batch: int
    timeout: float
    stats: dict[str, int]
    log: logging.Logger
    cursor: dict[str, str] = field(default_factory=dict)
    bugs: frozenset[str] = frozenset()  # seeded defects (docs/bugs.md)

    async def run_once(self) -> int:
        """One round over every reachable owner; returns how many hints were delivered."""
        if "no-handoff" in self.bugs:
            return 0  # BUG: hints pile up on the fallbacks and never reach their owners
        delivered = 0
        for owner in self.owners:
            if self.is_up(owner):
                delivered += await self.deliver(owner)
        return delivered

    async def deliver(self, owner: str) -> int:
        storage = self.replica.storage
        after = self.cursor.get(owner, "")
        keys = [k for _, k in storage.hint_keys(owner, after=after, limit=self.batch)]
        if not keys:
            self.cursor.pop(owner, None)
            if not after:
                return 0
            keys = [k for _, k in storage.hint_keys(owner, limit=self.batch)]
            if not keys:
                return 0
        sem = asyncio.Semaphore(IN_FLIGHT)
        failures: list[str] = []

        async def one(key: str) -> bool:
            if failures:
                return False  # the owner went away mid-round: leave the rest for later
            async with sem:
                blob = storage.hint_get(owner, key)
                if blob is None:
                    return False
                try:
                    await self.call(owner, "replicate", [key, blob], self.timeout)
                except PeerError as e:
                    failures.append(f"{key}: {e}")
                    return False
                if storage.hint_get(owner, key) != blob:
                    return False  # a newer hint arrived: it goes next round
                await storage.hint_delete(owner, key)
                return True

        done = await asyncio.gather(*(one(k) for k in keys))
        count = sum(done)
        self.stats["hints_handed_off"] = self.stats.get("hints_handed_off", 0) + count
        self.cursor[owner] = keys[-1] if not failures else self.cursor.get(owner, "")
        if count:
            self.log.info("handoff: delivered %d hint(s) to %s", count, owner)
        if failures:
            self.log.info("handoff to %s stopped: %s", owner, failures[0])
        return count
