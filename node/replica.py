"""This node as a replica: its local sibling sets, coordinated writes and merges from peers,
the hints it holds as a fallback, and the reaping of tombstones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node import clocks
from node.bugs import last_write_wins
from node.clocks import VV, Version
from node.env import Clock
from node.merkle import version_digest
from node.storage import Storage

# Called after every local change of a key's sibling set: (key, new siblings, their encoding;
# empty list and None once the key was reaped). Feeds the Merkle trees and the tombstone index.
WriteHook = Callable[[str, list[Version], "bytes | None"], None]


def digest(blob: bytes) -> bytes:
    """The digest of a stored sibling set, as the Merkle trees and reaping compare it. The
    encoding is canonical (siblings sorted by dot), so equal sets give equal digests."""
    return version_digest(blob)


class Replica:
    def __init__(self, storage: Storage, actor: str, clock: Clock, prune_max: int = 0) -> None:
        self.storage = storage
        self.actor = actor
        self.clock = clock
        self.prune_max = prune_max
        self.write_hooks: list[WriteHook] = []
        self.bugs: frozenset[str] = frozenset()  # seeded defects, set by the node

    def read(self, key: str) -> list[Version]:
        return clocks.decode_versions(self.storage.get(key))

    def read_blob(self, key: str) -> bytes:
        return self.storage.get(key) or b""

    def coordinate(self, key: str, value: str | None, ctx: VV, tombstone: bool
                   ) -> tuple[Version, list[Version], Awaitable[None]]:
        """Make a new version at this actor; returns it, the new sibling set and its durability.

        Runs without awaiting between read and put, so it is atomic per key (see storage)."""
        local = self.read(key)
        if "blind-overwrite" in self.bugs:
            # BUG: the new version claims to have seen everything this coordinator holds
            ctx = clocks.vv_merge(ctx, clocks.context_of(local))
        new, siblings = clocks.write(local, ctx, self.actor, self.clock.wall_ms(), value,
                                     tombstone, self.prune_max)
        if "lww" in self.bugs:
            siblings = last_write_wins(siblings)
        blob = clocks.encode_versions(siblings)
        durable = self.storage.put(key, blob)
        self._changed(key, siblings, blob)
        return new, siblings, durable

    def merge(self, key: str, incoming: list[Version]) -> Awaitable[None]:
        """Merge a sibling set from a peer; the awaitable completes once the result is durable."""
        local = self.read(key)
        merged = clocks.sync(local, incoming)
        if "lww" in self.bugs:
            merged = last_write_wins(merged)
        if merged == local:
            return self.storage.wait_durable(key)
        blob = clocks.encode_versions(merged)
        durable = self.storage.put(key, blob)
        self._changed(key, merged, blob)
        return durable

    def overwrite(self, key: str, versions: list[Version]) -> Awaitable[None]:
        """Replace the key's sibling set without merging (only the read-repair-clobbers bug
        does this: it loses whatever this replica held that `versions` lacks)."""
        blob = clocks.encode_versions(versions)
        durable = self.storage.put(key, blob)
        self._changed(key, versions, blob)
        return durable

    def reap(self, key: str, expected: bytes) -> Awaitable[None] | None:
        """Delete `key` if it still holds exactly the tombstones whose digest is `expected`;
        None (nothing done) otherwise: a write that landed since must not be lost."""
        blob = self.storage.get(key)
        if blob is None or digest(blob) != expected:
            return None
        if not all(v.tombstone for v in clocks.decode_versions(blob)):
            return None
        durable = self.storage.delete(key)
        self._changed(key, [], None)
        return durable

    # ---- hints: sibling sets held as a fallback, for a primary ----

    def hint(self, owner: str, key: str, incoming: list[Version]) -> Awaitable[None]:
        merged = clocks.sync(clocks.decode_versions(self.storage.hint_get(owner, key)), incoming)
        return self.storage.hint_put(owner, key, clocks.encode_versions(merged))

    def hints_for(self, key: str, owners: list[str]) -> dict[str, bytes]:
        out = {}
        for owner in owners:
            blob = self.storage.hint_get(owner, key)
            if blob:
                out[owner] = blob
        return out

    def _changed(self, key: str, siblings: list[Version], blob: bytes | None) -> None:
        for hook in self.write_hooks:
            hook(key, siblings, blob)
