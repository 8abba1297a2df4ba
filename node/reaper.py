"""Tombstone reaping: forget a deleted key once that is safe.

A key whose every sibling is a tombstone is tracked here (`on_write`). Every `reap_interval_ms`
the key's first primary, and only it, reaps the keys whose newest tombstone is older than
`tombstone_grace_ms`: it reads every primary, and only if all of them answer with exactly the
same tombstones does it ask each to delete the key if it still holds exactly those (compare and
delete; a write that landed meanwhile is kept). So a primary that missed the delete, or that is
down, blocks the reap, and the tombstone keeps shadowing any stale copy that comes back.

Once reaping has started, a primary that cannot be reached does not stop it: every primary is
asked, and the key is remembered (`unfinished`) and the missed primaries are asked again each
round until all of them have answered. A tombstone left on one primary would otherwise stay
there unnoticed until anti-entropy copied it back.

Hints count too: while any node of the key's preference list or its fallbacks still holds an
undelivered hint for it (or cannot be asked), the reap waits, because that hint may carry a
version the tombstone superseded and would bring it back once delivered to a primary that no
longer has the tombstone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from node.clocks import Version
from node.coordinator import Call
from node.env import Clock
from node.replica import Replica, digest
from node.ring import Ring
from node.transport import PeerError

MAX_PER_ROUND = 500


@dataclass
class Reaper:
    me: str
    ring: Ring
    replica: Replica
    call: Call
    clock: Clock
    grace_ms: int
    timeout: float
    stats: dict[str, int]
    log: logging.Logger
    tombstoned: dict[str, int] = field(default_factory=dict)  # key -> newest tombstone ts
    # key -> (digest of the reaped tombstones, primaries that have not answered the reap yet)
    unfinished: dict[str, tuple[bytes, list[str]]] = field(default_factory=dict)
    bugs: frozenset[str] = frozenset()  # seeded defects (docs/bugs.md)

    def on_write(self, key: str, siblings: list[Version], _blob: bytes | None) -> None:
        if siblings and all(v.tombstone for v in siblings):
            self.tombstoned[key] = max(v.ts for v in siblings)
        else:
            self.tombstoned.pop(key, None)

    def due(self) -> list[str]:
        """Keys this node should try to reap now: it is their first primary, grace is over."""
        cutoff = self.clock.wall_ms() - self.grace_ms
        out = {k for k, ts in self.tombstoned.items()
               if ts <= cutoff and self.ring.preference_list(k)[0] == self.me}
        return sorted(out | set(self.unfinished))[:MAX_PER_ROUND]

    async def run_once(self) -> int:
        reaped = 0
        for key in self.due():
            try:
                if key in self.unfinished:
                    expected, missed = self.unfinished[key]
                    reaped += await self._reap_on(key, expected, missed, len(missed))
                else:
                    reaped += await self.reap(key)
            except PeerError as e:
                self.log.debug("reaper: %s not reaped: %s", key, e)
        return reaped

    async def reap(self, key: str) -> int:
        blob = self.replica.storage.get(key)
        if blob is None:
            self.tombstoned.pop(key, None)
            return 0
        expected = digest(blob)
        primaries = self.ring.preference_list(key)
        if "reap-early" in self.bugs:
            return await self._reap_reachable(key, expected, primaries)
        for peer in primaries:
            if peer != self.me:
                theirs = await self.call(peer, "read", [key], self.timeout)
                if not theirs or digest(theirs) != expected:
                    return 0  # a primary has missed the delete, or holds more: not yet
        # fallbacks hold hints, and so may primaries: a coordinator keeps one for a primary that
        # missed its write (Coordinator.hint_missed); this node's own hints are asked locally
        for peer in [*primaries, *self.ring.fallbacks(key)]:
            if await self.call(peer, "hints_for", [key], self.timeout):
                return 0  # a stale copy still waits to be handed off: it must land first
        return await self._reap_on(key, expected, primaries, len(primaries))

    async def _reap_on(self, key: str, expected: bytes, peers: list[str], total: int) -> int:
        """Ask each of `peers` to reap `key` if it holds exactly `expected`; one that cannot be
        reached neither stops the others nor is forgotten (it is asked again next round).
        A peer answering False holds something else by now (or nothing): done with it."""
        done, missed = 0, []
        for peer in peers:
            try:
                done += bool(await self.call(peer, "reap", [key, expected], self.timeout))
            except PeerError as e:
                missed.append(peer)
                self.log.info("reaper: %s not reaped on %s yet: %s", key, peer, e)
        if missed:
            self.unfinished[key] = (expected, missed)
        else:
            self.unfinished.pop(key, None)
        if done:
            self.log.debug("reaper: %s reaped on %d replica(s)", key, done)
        return 1 if done == total else 0

    async def _reap_reachable(self, key: str, expected: bytes, primaries: list[str]) -> int:
        """BUG reap-early: reap wherever the tombstone is, without asking whether every
        primary has it; a primary that missed the delete keeps the old value."""
        done = 0
        for peer in primaries:
            try:
                done += bool(await self.call(peer, "reap", [key, expected], self.timeout))
            except PeerError:
                continue
        if done:
            self.tombstoned.pop(key, None)
        return 1 if done else 0
