"""Active anti-entropy: one Merkle tree per partition this node replicates, kept current on the
write path, and a periodic exchange with the other replicas of each partition.

Trees are built from storage once at start-up, then updated by the replica's write hook on every
local change (`on_write`), never rebuilt for an exchange. A leaf entry is (key, digest of the
stored sibling set, tombstones included), so replicas agree exactly when they hold the same
versions.

Every `aae_interval_ms` the node first compares roots with each other replica that is up in its
view: one message per peer carries the roots of every partition the two share (kind
"aae_roots"), and the peer names the partitions whose roots differ. A round over a quiet cluster
is then one message per peer, not one per partition and peer. Only for a differing partition
does it run the exchange of node/merkle.py over the transport (kind "aae"): it descends only into
differing branches and ends with the differing keys. `repair` then fetches
the peer's sibling sets for those keys, merges them into the local copy, and pushes the merged
set back wherever the peer's differed: both ways in one exchange. At most `aae_max_keys` keys
are repaired per round, so a badly diverged replica is fixed over several rounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from node import clocks
from node.clocks import Version
from node.coordinator import Call
from node.env import Clock
from node.merkle import MerkleTree, Shape, answer, diff_async
from node.replica import Replica, digest
from node.ring import Ring
from node.transport import PeerError

SHAPE = Shape(fanout=16, depth=3, digest_size=16)  # 4,096 leaves per partition
REPAIR_CHUNK = 256  # keys per read_many / replicate_many message
ROOTS_CHUNK = 1024  # partitions per aae_roots message (~20 KB)
HASH_SLICE = 64  # Merkle segments hashed between two pauses (a fraction of a ms)
HASH_PAUSE_S = 0.001


@dataclass
class PartitionInfo:
    keys_repaired: int = 0
    exchanges: int = 0
    last_exchange: dict[str, Any] | None = None


@dataclass
class AntiEntropy:
    me: str
    ring: Ring
    replica: Replica
    call: Call
    is_up: Callable[[str], bool]
    clock: Clock
    max_keys: int
    timeout: float
    stats: dict[str, int]
    log: logging.Logger
    trees: dict[int, MerkleTree] = field(default_factory=dict)
    info: dict[int, PartitionInfo] = field(default_factory=dict)
    _next: int = 0
    root_messages: int = 0  # aae_roots messages sent, and their bytes both ways (msgpack)
    root_bytes: int = 0
    bugs: frozenset[str] = frozenset()  # seeded defects (docs/bugs.md)

    def __post_init__(self) -> None:
        n = self.ring.n
        for p in range(self.ring.q):
            if self.me in self.ring.walk(p)[:n]:
                self.trees[p] = MerkleTree(SHAPE)
                self.info[p] = PartitionInfo()

    def load(self) -> int:
        """Fill the trees from storage (start-up); returns the number of keys."""
        count = 0
        for key, blob in self.replica.storage.items():
            self.on_write(key, [], blob)
            count += 1
        return count

    def on_write(self, key: str, _siblings: list[Version], blob: bytes | None) -> None:
        tree = self.trees.get(self.ring.partition(key))
        if tree is None:
            return  # not a partition this node replicates (stale data after a ring change)
        if blob is None:
            tree.remove(key)
        else:
            tree.update(key, digest(blob))

    # ---- the answering side ----

    def answer(self, body: Any) -> dict:
        if not isinstance(body, list) or len(body) != 2 or not isinstance(body[0], int):
            raise ValueError("aae needs [partition, request]")
        tree = self.trees.get(body[0])
        if tree is None:
            return {"error": f"{self.me} does not replicate partition {body[0]}"}
        return answer(tree, body[1])

    async def differing(self, body: Any) -> list[int]:
        """The answer to "aae_roots": of the [partition, root] pairs sent, the partitions whose
        root differs from this node's, or that this node does not replicate."""
        if not isinstance(body, list) or len(body) > ROOTS_CHUNK:
            raise ValueError(f"aae_roots needs a list of at most {ROOTS_CHUNK} [partition, root]")
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is int
                    and isinstance(pair[1], bytes)):
                raise ValueError(f"aae_roots: each entry must be [partition, root], got {pair!r}")
        mine = dict(await self.roots([p for p, _ in body]))
        return [p for p, root in body if mine.get(p) != root]

    async def roots(self, partitions: list[int]) -> list[list]:
        """[partition, root] for each of `partitions` this node replicates. A root hashes the
        segments written since the last one was asked: after a busy interval, 5-13 ms of CPU
        for a round's partitions at once, on the node and on each peer it asks, which the
        client requests of every process sharing the cores waited for (it set the store
        benchmark's p99.9). So the hashing pauses every HASH_SLICE segments: a pause, not only
        a turn of the event loop, so that the other processes get the CPU too. The pauses
        together stay under a quarter of the request timeout, so a huge backlog only hashes
        in fewer slices."""
        out, work, paused = [], 0, 0.0
        for p in partitions:
            tree = self.trees.get(p)
            if tree is None:
                continue
            work += tree.pending
            if work > HASH_SLICE:
                pause = HASH_PAUSE_S if paused < self.timeout / 4 else 0.0
                await asyncio.sleep(pause)
                paused += pause
                work = tree.pending
            out.append([p, tree.root])
        return out

    # ---- the driving side ----

    async def run_once(self) -> int:
        """Exchange every partition with its other replicas; returns keys repaired."""
        budget = self.max_keys
        parts = sorted(self.trees)
        # start where the last round stopped, so a spent budget does not starve later partitions
        start = self._next % len(parts) if parts else 0
        order = parts[start:] + parts[:start]
        shared: dict[str, list[int]] = {}  # peer -> the partitions it also replicates, in order
        for p in order:
            for peer in self.ring.walk(p)[: self.ring.n]:
                if peer != self.me:
                    shared.setdefault(peer, []).append(p)
        repaired = 0
        for peer, plist in shared.items():
            if not self.is_up(peer):
                continue
            try:
                differ = await self.compare_roots(peer, plist)
            except Exception as e:
                if not _predates_roots(e):  # a peer that fails mid-round: try it next round
                    self.log.info("aae: root comparison with %s failed: %s", peer, e)
                    continue
                differ = plist  # a node from before aae_roots: exchange every shared partition
            for p in differ:
                if budget <= 0:
                    self._next = parts.index(p)
                    return repaired
                if not self.is_up(peer):
                    break
                try:
                    got = await self.exchange(p, peer, budget)
                except Exception as e:  # a peer that fails mid-exchange: try it next round
                    self.log.info("aae: exchange of partition %d with %s failed: %s", p, peer, e)
                    continue
                repaired += got
                budget -= got
        self._next = 0
        return repaired

    async def compare_roots(self, peer: str, partitions: list[int]) -> list[int]:
        """Send `peer` this node's roots of `partitions`; returns those that differ, in order.
        A partition whose roots agree counts as an exchange that found nothing and cost nothing
        beyond the shared message (counted in `root_messages` and `root_bytes`)."""
        differ: set[int] = set()
        for at in range(0, len(partitions), ROOTS_CHUNK):
            chunk = partitions[at: at + ROOTS_CHUNK]
            roots = await self.roots(chunk)
            got = await self.call(peer, "aae_roots", roots, self.timeout)
            if not isinstance(got, list) or not all(type(p) is int for p in got):
                raise ValueError(f"aae_roots answered {got!r}, not a list of partitions")
            differ.update(got)
            self.root_messages += 1
            self.root_bytes += len(msgpack.packb(roots)) + len(msgpack.packb(got))
            now = self.clock.wall_ms()
            for p in chunk:
                if p not in differ:
                    self._record(p, {"peer": peer, "at_ms": now, "differences": 0, "repaired": 0,
                                     "bytes": 0, "round_trips": 0}, 0)
        return [p for p in partitions if p in differ]

    async def exchange(self, partition: int, peer: str, budget: int) -> int:
        tree = self.trees[partition]

        def ask(request: dict) -> Awaitable[Any]:
            # the call's awaitable itself (diff_async awaits it): no coroutine of its own
            return self.call(peer, "aae", [partition, request], self.timeout)

        found = await diff_async(tree, ask)
        keys = sorted(found.keys)[:budget]
        # BUG aae-noop: the differences are found, counted and left alone
        noop = "aae-noop" in self.bugs
        repaired = await self.repair(peer, keys) if keys and not noop else 0
        self._record(partition, {"peer": peer, "at_ms": self.clock.wall_ms(),
                                 "differences": len(found.keys), "repaired": repaired,
                                 "bytes": found.bytes_total, "round_trips": found.round_trips},
                     repaired)
        if repaired:
            self.log.info("aae: partition %d with %s: %d key(s) differed, %d repaired",
                          partition, peer, len(found.keys), repaired)
        return repaired

    async def repair(self, peer: str, keys: list[str]) -> int:
        """Merge `keys` both ways with `peer`; returns how many keys changed on either side."""
        changed = 0
        for at in range(0, len(keys), REPAIR_CHUNK):
            chunk = keys[at: at + REPAIR_CHUNK]
            blobs = await self.call(peer, "read_many", chunk, self.timeout)
            if not isinstance(blobs, list) or len(blobs) != len(chunk):
                raise ValueError("read_many answered the wrong number of keys")
            push = []
            waits = []
            for key, blob in zip(chunk, blobs, strict=True):
                remote = clocks.decode_versions(blob or None)
                local = self.replica.read(key)
                merged = clocks.sync(local, remote)
                if merged != local:
                    waits.append(self.replica.merge(key, remote))
                if merged != remote:
                    push.append([key, clocks.encode_versions(merged)])
                if merged != local or merged != remote:
                    changed += 1
            if push:
                await self.call(peer, "replicate_many", push, self.timeout)
            for w in waits:
                await w
        return changed

    def _record(self, partition: int, last: dict[str, Any], repaired: int) -> None:
        info = self.info[partition]
        info.exchanges += 1
        info.keys_repaired += repaired
        info.last_exchange = last
        self.stats["aae_exchanges"] = self.stats.get("aae_exchanges", 0) + 1
        self.stats["aae_keys_repaired"] = self.stats.get("aae_keys_repaired", 0) + repaired

    def status(self) -> dict:
        parts = {}
        for p, tree in sorted(self.trees.items()):
            info = self.info[p]
            parts[str(p)] = {"root": tree.root.hex(), "keys": len(tree),
                             "replicas": self.ring.walk(p)[: self.ring.n],
                             "exchanges": info.exchanges, "keys_repaired": info.keys_repaired,
                             "last_exchange": info.last_exchange}
        return parts


def _predates_roots(error: Exception) -> bool:
    """The peer answered that it does not know "aae_roots" (`Node._handle`'s error for a kind it
    does not serve): a node of the version before it."""
    return (isinstance(error, PeerError) and error.reason == "remote"
            and "unknown request kind" in error.detail)
