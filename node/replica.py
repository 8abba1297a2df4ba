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


# Dot counters are leased from storage this many at a time (see DotCounter).
LEASE_BLOCK = 10_000
LEASE_META = "dot_lease"


class DotCounter:
    """The highest dot counter this actor has handed out, shared by all keys.

    A counter derived only from a key's local siblings and the client's context starts again
    at 1 once the key is reaped, and a client still holding an old context {X:3} would then
    write a version whose past covers the new X:1: an acknowledged write lost (issue 11). So
    every new dot is above this node-wide counter too, and a dot is never reused.

    The counter survives restarts through a lease: storage holds a high-water mark (meta row
    `dot_lease`) that no counter handed out exceeds. It is written durably (synchronously,
    once per LEASE_BLOCK dots) before the first counter above it is used, so a restarted node
    starts above everything it ever handed out without a disk write per PUT; each restart
    skips the rest of its block (harmless: counters are 63-bit).
    """

    def __init__(self, storage: Storage, block: int = LEASE_BLOCK) -> None:
        self.storage = storage
        self.block = block
        raw = storage.meta_get(LEASE_META)
        self.lease = int(raw) if raw else 0
        self.top = self.lease  # after a restart: above every counter handed out before

    def observe(self, counter: int) -> None:
        """Count a counter of this actor found in storage (a data directory from before the
        lease existed); the next dot is above it."""
        self.top = max(self.top, counter)

    def take(self, derived: int) -> int:
        """The next dot's counter: above `derived` (the key's local state and the context)
        and above every counter handed out before. Durable before it is returned."""
        counter = max(derived, self.top + 1)
        if counter > self.lease:
            lease = counter + self.block
            self.storage.meta_put(LEASE_META, str(lease))  # raises: no dot handed out
            self.lease = lease
        self.top = counter
        return counter


class SiblingLimit(ValueError):
    """A client write would leave the key with more siblings, or more bytes, than allowed."""


class HintLimit(ValueError):
    """This node already holds `max_hints_per_peer` hinted keys for that owner."""


class ForgedContext(ValueError):
    """A client's context names a counter of this actor that this actor never issued."""


class Replica:
    def __init__(self, storage: Storage, actor: str, clock: Clock, prune_max: int = 0,
                 max_siblings: int = 0, max_bytes: int = 0, max_hints: int = 0) -> None:
        self.storage = storage
        # 0: unbounded. Checked on client writes only: a merge from a peer never drops data, so
        # a replica may hold up to a few times this after concurrent writes elsewhere
        self.max_siblings = max_siblings
        self.max_bytes = max_bytes
        self.max_hints = max_hints  # hinted keys per owner; 0: unbounded
        # owner -> hinted keys (an upper bound: handoff deletes behind our back, so it is
        # recounted from storage, at most once a second, when it reaches the limit)
        self._hint_count: dict[str, int] = {}
        self._hint_recount_at: dict[str, float] = {}
        self.actor = actor
        self.clock = clock
        self.prune_max = prune_max
        self.dots = DotCounter(storage)
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
        new, siblings, _, durable = self.coordinate_blob(key, value, ctx, tombstone)
        return new, siblings, durable

    def coordinate_blob(self, key: str, value: str | None, ctx: VV, tombstone: bool
                        ) -> tuple[Version, list[Version], bytes, Awaitable[None]]:
        """`coordinate`, with the new sibling set's encoding too (stored here, and sent as it
        is to every other replica: encoded once)."""
        mine = ctx.get(self.actor, (0, 0))[0]
        if mine > self.dots.top and "reuse-dots" not in self.bugs:  # that bug skips the counter
            # only a forged context can hold it (unsigned contexts: insecure = true); taking it
            # would push the key's counter towards 2**63, past which no context is accepted
            raise ForgedContext(f"context holds counter {mine} of {self.actor}, which was "
                                f"never issued (the highest is {self.dots.top})")
        local = self.read(key)
        if "blind-overwrite" in self.bugs:
            # BUG: the new version claims to have seen everything this coordinator holds
            ctx = clocks.vv_merge(ctx, clocks.context_of(local))
        derived = clocks.next_counter(local, ctx, self.actor)
        # BUG reuse-dots: the counter comes from the key's own state only, so it restarts
        # after a reap and a stale context's past covers the new dot
        counter = derived if "reuse-dots" in self.bugs else self.dots.take(derived)
        new, siblings = clocks.write(local, ctx, self.actor, self.clock.wall_ms(), value,
                                     tombstone, self.prune_max, counter)
        if "lww" in self.bugs:
            siblings = last_write_wins(siblings)
        blob = clocks.encode_versions(siblings)
        self._check_limits(key, siblings, blob)
        durable = self.storage.put(key, blob)
        self._changed(key, siblings, blob)
        return new, siblings, blob, durable

    def _check_limits(self, key: str, siblings: list[Version], blob: bytes) -> None:
        # Refused before anything is stored (so the dot taken is merely skipped): one key's set
        # must stay small enough to travel in one frame and to be read without exhausting memory
        if self.max_siblings and len(siblings) > self.max_siblings:
            raise SiblingLimit(
                f"the write would leave {len(siblings)} siblings of {key!r}, over the limit of "
                f"{self.max_siblings} (max_siblings): read the key and write with its context "
                "to replace them")
        if self.max_bytes and len(blob) > self.max_bytes:
            raise SiblingLimit(
                f"the write would leave {len(blob)} bytes of siblings of {key!r}, over the "
                f"limit of {self.max_bytes} (max_sibling_bytes): read the key and write with "
                "its context to replace them")

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
        """Hold `incoming` for `owner`; raises HintLimit when `owner` already has the most
        hinted keys allowed (a long-dead owner must not fill this node's disk)."""
        held = self.storage.hint_get(owner, key)
        if held is None and self.max_hints:
            self._count_new_hint(owner)
        merged = clocks.sync(clocks.decode_versions(held), incoming)
        return self.storage.hint_put(owner, key, clocks.encode_versions(merged))

    def _count_new_hint(self, owner: str) -> None:
        count = self._hint_count.get(owner)
        now = self.clock.monotonic()
        if count is None or (count >= self.max_hints
                             and now - self._hint_recount_at.get(owner, -1.0) >= 1.0):
            count = len(self.storage.hint_keys(owner, limit=self.max_hints + 1))
            self._hint_recount_at[owner] = now
        if count >= self.max_hints:
            self._hint_count[owner] = count
            raise HintLimit(f"already holding {count} hinted keys for {owner} "
                            f"(max_hints_per_peer = {self.max_hints})")
        self._hint_count[owner] = count + 1

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
