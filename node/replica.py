"""This node as a replica: its local sibling sets, coordinated writes and merges from peers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node import clocks
from node.clocks import VV, Version
from node.env import Clock
from node.storage import Storage

# Called after every local change of a key's sibling set: (key, new siblings). A seam for
# issue 3's Merkle trees and hint bookkeeping.
WriteHook = Callable[[str, list[Version]], None]


class Replica:
    def __init__(self, storage: Storage, actor: str, clock: Clock, prune_max: int = 0) -> None:
        self.storage = storage
        self.actor = actor
        self.clock = clock
        self.prune_max = prune_max
        self.write_hooks: list[WriteHook] = []

    def read(self, key: str) -> list[Version]:
        return clocks.decode_versions(self.storage.get(key))

    def read_blob(self, key: str) -> bytes:
        return self.storage.get(key) or b""

    def coordinate(self, key: str, value: str | None, ctx: VV, tombstone: bool
                   ) -> tuple[Version, list[Version], Awaitable[None]]:
        """Make a new version at this actor; returns it, the new sibling set and its durability.

        Runs without awaiting between read and put, so it is atomic per key (see storage)."""
        local = self.read(key)
        new, siblings = clocks.write(local, ctx, self.actor, self.clock.wall_ms(), value,
                                     tombstone, self.prune_max)
        durable = self.storage.put(key, clocks.encode_versions(siblings))
        self._changed(key, siblings)
        return new, siblings, durable

    def merge(self, key: str, incoming: list[Version]) -> Awaitable[None]:
        """Merge a sibling set from a peer; the awaitable completes once the result is durable."""
        local = self.read(key)
        merged = clocks.sync(local, incoming)
        if merged == local:
            return self.storage.wait_durable(key)
        durable = self.storage.put(key, clocks.encode_versions(merged))
        self._changed(key, merged)
        return durable

    def _changed(self, key: str, siblings: list[Version]) -> None:
        for hook in self.write_hooks:
            hook(key, siblings)

