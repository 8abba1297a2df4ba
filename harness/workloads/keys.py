"""Which keys a workload's operations go to: a fixed set, or Jepsen-style rotating keys.

With `ops_per_key` set, `active` keys are in play at a time and each takes that many operations
before a fresh key replaces it (Jepsen's `independent` generators do the same). A key then lives
a short, bounded stretch of the run: one written while a fault was on is not rewritten after the
heal, so whatever the fault left behind (a replica that missed writes, a lost or resurrected
value) is still there for the final reads and the convergence check, instead of being repaired
by the next write. Without rotation the same few keys are written all run long, and a defect
shows only if a fault happens to be on when the workload stops.
"""

from __future__ import annotations

import random


class KeySpace:
    def __init__(self, prefix: str, active: int, rng: random.Random,
                 ops_per_key: int = 0) -> None:
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

    def pick(self) -> str:
        """The key of the next operation: a random key in play, retired once it has had its
        share of operations."""
        slot = self.rng.randrange(len(self.slots))
        index = self.slots[slot]
        self.used[slot] += 1
        if self.ops_per_key and self.used[slot] >= self.ops_per_key:
            self.slots[slot], self.used[slot] = self.next_index, 0
            self.next_index += 1
        return self.name(index)

    def name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def all(self) -> list[str]:
        """Every key that has been in play (the final reads read each of them)."""
        return [self.name(i) for i in range(self.next_index)]
