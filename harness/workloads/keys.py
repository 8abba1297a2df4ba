"""Which keys a workload's operations go to: a fixed set, or Jepsen-style rotating keys.

With `ops_per_key` set, `active` keys are in play at a time and each takes that many operations
before a fresh key replaces it (Jepsen's `independent` generators do the same). A key then lives
a short, bounded stretch of the run: one written while a fault was on is not rewritten after the
heal, so whatever the fault left behind (a replica that missed writes, a lost or resurrected
value) is still there for the final reads and the convergence check, instead of being repaired
by the next write. Without rotation the same few keys are written all run long, and a defect
shows only if a fault happens to be on when the workload stops.

With `revisit` > 0, a retiring key is sometimes replaced not by a fresh key but by the
longest-idle retired one, once that has been idle for at least a generation of keys (`active x
ops_per_key` operations, as long as a key stays in play: 5 s by default): a user who comes back
to an old cart or record. The key's history then spans a quiet stretch during which the store's
background work (tombstone reaping, anti-entropy) acted on it, and clients may come back with
contexts read before it (a store that mishandles a key after reaping its tombstone shows only
then).
"""

from __future__ import annotations

import random
from collections import deque


class KeySpace:
    def __init__(self, prefix: str, active: int, rng: random.Random,
                 ops_per_key: int = 0, revisit: float = 0.0) -> None:
        if active < 1:
            raise ValueError(f"at least one key must be in play (got {active})")
        if ops_per_key < 0:
            raise ValueError(f"ops per key must not be negative (got {ops_per_key})")
        self.prefix = prefix
        self.rng = rng
        self.ops_per_key = ops_per_key
        self.slots = list(range(active))  # the key index each slot holds now
        self.used = [0] * active  # operations given to each slot's key so far
        self.next_index = active
        if not 0 <= revisit <= 1:
            raise ValueError(f"revisit must be a probability (got {revisit})")
        self.revisit = revisit
        self.ops = 0  # operations handed out so far
        self.idle: deque[tuple[int, int]] = deque()  # (retired key index, ops when it retired)
        self.idle_for = active * ops_per_key
        self.retiring = False  # the key `pick` just gave has had its last operation

    def pick(self) -> str:
        """The key of the next operation: a random key in play, retired once it has had its
        share of operations (`retiring` says this one was its last)."""
        slot = self.rng.randrange(len(self.slots))
        index = self.slots[slot]
        self.used[slot] += 1
        self.ops += 1
        self.retiring = bool(self.ops_per_key) and self.used[slot] >= self.ops_per_key
        if self.retiring:
            self.slots[slot], self.used[slot] = self._successor(), 0
            if self.revisit:
                self.idle.append((index, self.ops))
        return self.name(index)

    def _successor(self) -> int:
        """A fresh key, or now and then (`revisit`) the longest-idle retired one."""
        # the random draw only when a key is eligible: without revisits, or before any key has
        # been idle long enough, the sequence of keys is the same as it always was
        if (self.idle and self.ops - self.idle[0][1] >= self.idle_for
                and self.rng.random() < self.revisit):
            return self.idle.popleft()[0]
        self.next_index += 1
        return self.next_index - 1

    def name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def all(self) -> list[str]:
        """Every key that has been in play (the final reads read each of them)."""
        return [self.name(i) for i in range(self.next_index)]
