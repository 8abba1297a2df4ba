"""Merkle trees for anti-entropy: one tree per ring partition, and a sans-I/O exchange protocol.

The tree has a fixed shape: ``fanout ** depth`` leaf *segments*; a key lives in the segment chosen
by a hash of the key, and a segment holds ``key -> version digest``. Level 0 is the root, level
``depth`` the segments; node ``i`` of level ``L`` has children ``i*fanout .. i*fanout+fanout-1``.
Only non-empty nodes are stored (an empty subtree hashes to all-zero bytes), so memory follows the
number of keys, not the number of segments. Writes only mark segments dirty; hashes are recomputed
lazily, for the dirty paths only, when a hash is next asked for.

Exchange: the side that drives (``diff`` / ``diff_async``) sends msgpack-friendly request dicts; the
other side answers them with ``answer(tree, request)``. The node wraps each request with the
partition id and carries it over its own transport. Requests, in the order the driver sends them:

- ``{"op": "root", "shape": [fanout, depth, digest_size]}`` -> ``{"root": bytes, "count": int}``
- ``{"op": "children", "level": L, "parents": [i, ...]}`` -> ``{"hashes": bytes}``, the
  concatenated hashes of every child (level ``L``) of each parent (level ``L-1``)
- ``{"op": "entries", "ranges": [[start, stop], ...]}`` -> ``{"entries": [[[key, digest], ...],
  ...]}``, the entries of segments ``start <= s < stop``, one list per range

A bad request gets ``{"error": "<message>"}``. The driver descends only into differing branches,
one request per level (chunked), so the bytes exchanged follow the number of differences.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

# blake2b personalisation keeps key placement, segment hashes and node hashes in separate domains.
_KEY_PERSON = b"dj-mk-key"
_SEGMENT_PERSON = b"dj-mk-seg"
_NODE_PERSON = b"dj-mk-node"

# Limits the answering side enforces so a faulty driver cannot ask for unbounded replies.
MAX_PARENTS_PER_REQUEST = 4096
MAX_SEGMENTS_PER_REQUEST = 1 << 16

Request = dict[str, Any]
Reply = dict[str, Any]


class ExchangeError(Exception):
    """The remote side refused a request or sent a reply that does not fit the protocol."""


class ProtocolError(ValueError):
    """A request to ``answer`` is malformed; its message goes back to the driver."""


@dataclass(frozen=True)
class Shape:
    """The geometry of a tree; both sides of an exchange must use the same one."""

    fanout: int = 16
    depth: int = 4
    digest_size: int = 16

    def __post_init__(self) -> None:
        for name in ("fanout", "depth", "digest_size"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise TypeError(f"Shape.{name} must be an int, got {getattr(self, name)!r}")
        if not 2 <= self.fanout <= 256:
            raise ValueError(f"fanout must be in 2..256, got {self.fanout}")
        if not 1 <= self.depth <= 8:
            raise ValueError(f"depth must be in 1..8, got {self.depth}")
        if self.fanout**self.depth > 1 << 24:
            raise ValueError(
                f"fanout**depth = {self.fanout**self.depth} segments is more than 2**24"
            )
        if not 8 <= self.digest_size <= 64:
            raise ValueError(f"digest_size must be in 8..64 bytes, got {self.digest_size}")

    @property
    def segments(self) -> int:
        return self.fanout**self.depth

    def width(self, level: int) -> int:
        """Number of nodes at ``level``."""
        return self.fanout**level

    def span(self, level: int) -> int:
        """Number of segments under one node of ``level``."""
        return self.fanout ** (self.depth - level)

    def as_list(self) -> list[int]:
        return [self.fanout, self.depth, self.digest_size]


def version_digest(encoded_versions: bytes, size: int = 16) -> bytes:
    """Digest of a key's stored version set, for ``MerkleTree.update``.

    ``encoded_versions`` must be canonical (same version set -> same bytes on every replica),
    e.g. msgpack of the siblings sorted by their dot.
    """
    return hashlib.blake2b(encoded_versions, digest_size=size).digest()


def _key_bytes(key: str) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"key must be str, got {type(key).__name__}")
    return key.encode("utf-8", "surrogatepass")


def _digest_bytes(digest: bytes) -> bytes:
    if not isinstance(digest, bytes | bytearray | memoryview):
        raise TypeError(f"version digest must be bytes, got {type(digest).__name__}")
    digest = bytes(digest)
    if not digest:
        raise ValueError("version digest must not be empty")
    return digest


@functools.lru_cache(maxsize=1 << 16)
def _segment_of(key: str, segments: int) -> int:
    """`MerkleTree.segment_of`, remembered: every write of a key (at each replica) hashes it
    again, and a node's keys are few next to the writes."""
    h = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8,
                        person=_KEY_PERSON).digest()
    return int.from_bytes(h) % segments


def _segment_hash(entries: dict[str, bytes], size: int) -> bytes:
    h = hashlib.blake2b(digest_size=size, person=_SEGMENT_PERSON)
    for key in sorted(entries):
        kb = key.encode("utf-8", "surrogatepass")
        digest = entries[key]
        # Length prefixes make the encoding unambiguous.
        h.update(b"".join((len(kb).to_bytes(4, "big"), kb, len(digest).to_bytes(2, "big"), digest)))
    return h.digest()


class MerkleTree:
    """A fixed-shape Merkle tree over key-hash segments, updated incrementally."""

    def __init__(self, shape: Shape | None = None) -> None:
        self.shape = shape if shape is not None else Shape()
        self.empty = bytes(self.shape.digest_size)
        self._empty_children = self.empty * self.shape.fanout
        self._segments: dict[int, dict[str, bytes]] = {}
        # _levels[L][i] is the hash of node i at level L; absent means empty.
        self._levels: list[dict[int, bytes]] = [{} for _ in range(self.shape.depth + 1)]
        self._dirty: set[int] = set()
        self._count = 0

    # -- building and updating -------------------------------------------------------------

    @classmethod
    def build(cls, items: Iterable[tuple[str, bytes]], shape: Shape | None = None) -> MerkleTree:
        """A tree holding ``items`` (key, digest); a later duplicate key wins."""
        tree = cls(shape)
        segments = tree._segments
        nseg = tree.shape.segments
        blake = hashlib.blake2b
        count = 0
        for key, digest in items:
            kb = _key_bytes(key)
            digest = _digest_bytes(digest)
            seg = int.from_bytes(blake(kb, digest_size=8, person=_KEY_PERSON).digest()) % nseg
            entries = segments.get(seg)
            if entries is None:
                entries = segments[seg] = {}
            if key not in entries:
                count += 1
            entries[key] = digest
        tree._count = count
        tree._dirty = set(segments)
        tree._flush()
        return tree

    def segment_of(self, key: str) -> int:
        """The segment (leaf index) that holds ``key``."""
        if type(key) is str:
            return _segment_of(key, self.shape.segments)
        h = hashlib.blake2b(_key_bytes(key), digest_size=8, person=_KEY_PERSON).digest()
        return int.from_bytes(h) % self.shape.segments

    def update(self, key: str, version_digest: bytes) -> None:
        """Record that ``key``'s stored version set now has this digest."""
        digest = _digest_bytes(version_digest)
        seg = self.segment_of(key)
        entries = self._segments.get(seg)
        if entries is None:
            entries = self._segments[seg] = {}
        old = entries.get(key)
        if old == digest:
            return
        if old is None:
            self._count += 1
        entries[key] = digest
        self._dirty.add(seg)

    def remove(self, key: str) -> bool:
        """Forget ``key`` (e.g. its tombstone was reaped); False if it was not there."""
        seg = self.segment_of(key)
        entries = self._segments.get(seg)
        if entries is None or key not in entries:
            return False
        del entries[key]
        if not entries:
            del self._segments[seg]
        self._count -= 1
        self._dirty.add(seg)
        return True

    def _flush(self) -> None:
        """Recompute the hashes on the paths from dirty segments to the root."""
        if not self._dirty:
            return
        fanout, size = self.shape.fanout, self.shape.digest_size
        leaves = self._levels[-1]
        changed: set[int] = set()
        for seg in self._dirty:
            entries = self._segments.get(seg)
            new = _segment_hash(entries, size) if entries else None
            if leaves.get(seg) != new:
                if new is None:
                    del leaves[seg]
                else:
                    leaves[seg] = new
                changed.add(seg // fanout)
        self._dirty.clear()
        for level in range(self.shape.depth - 1, -1, -1):
            if not changed:
                break
            children, nodes = self._levels[level + 1], self._levels[level]
            parents: set[int] = set()
            empty = self.empty
            for idx in changed:
                base = idx * fanout
                joined = b"".join([children.get(base + c, empty) for c in range(fanout)])
                if joined == self._empty_children:
                    new = None
                else:
                    new = hashlib.blake2b(joined, digest_size=size, person=_NODE_PERSON).digest()
                if nodes.get(idx) != new:
                    if new is None:
                        del nodes[idx]
                    else:
                        nodes[idx] = new
                    parents.add(idx // fanout)
            changed = parents

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._segments.get(self.segment_of(key), ())

    def get(self, key: str) -> bytes | None:
        return self._segments.get(self.segment_of(key), {}).get(key)

    def items(self) -> Iterator[tuple[str, bytes]]:
        for entries in self._segments.values():
            yield from entries.items()

    @property
    def pending(self) -> int:
        """Segments written since the hashes were last computed: the work the next `root`
        does."""
        return len(self._dirty)

    @property
    def root(self) -> bytes:
        self._flush()
        return self._levels[0].get(0, self.empty)

    def _check_level(self, level: int, lowest: int = 0) -> None:
        if not isinstance(level, int) or isinstance(level, bool):
            raise ProtocolError(f"level must be an int, got {level!r}")
        if not lowest <= level <= self.shape.depth:
            raise ProtocolError(f"level {level} is outside {lowest}..{self.shape.depth}")

    def _check_index(self, level: int, index: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ProtocolError(f"node index must be an int, got {index!r}")
        if not 0 <= index < self.shape.width(level):
            raise ProtocolError(
                f"node index {index} is outside 0..{self.shape.width(level) - 1} at level {level}"
            )

    def node_hash(self, level: int, index: int) -> bytes:
        """Hash of one node; all-zero bytes for an empty subtree."""
        return self.hashes(level, [index])[0]

    def hashes(self, level: int, indexes: Iterable[int]) -> list[bytes]:
        """Hashes of the given nodes of ``level``."""
        self._check_level(level)
        self._flush()
        nodes = self._levels[level]
        out = []
        for idx in indexes:
            self._check_index(level, idx)
            out.append(nodes.get(idx, self.empty))
        return out

    def children_hashes(self, level: int, parents: Iterable[int]) -> bytes:
        """Concatenated hashes of all children (at ``level``) of each parent (at ``level-1``)."""
        self._check_level(level, lowest=1)
        self._flush()
        nodes, fanout, empty = self._levels[level], self.shape.fanout, self.empty
        parts = []
        for parent in parents:
            self._check_index(level - 1, parent)
            base = parent * fanout
            parts.extend(nodes.get(base + c, empty) for c in range(fanout))
        return b"".join(parts)

    def subtree_range(self, level: int, index: int) -> tuple[int, int]:
        """The segments ``[start, stop)`` under node ``index`` of ``level``."""
        self._check_level(level)
        self._check_index(level, index)
        span = self.shape.span(level)
        return index * span, (index + 1) * span

    def entries_in_range(self, start: int, stop: int) -> list[tuple[str, bytes]]:
        """Entries of segments ``start <= s < stop``, by segment then key."""
        if not (isinstance(start, int) and isinstance(stop, int)):
            raise ProtocolError(f"segment range must be ints, got [{start!r}, {stop!r}]")
        if not 0 <= start < stop <= self.shape.segments:
            raise ProtocolError(
                f"segment range [{start}, {stop}) is outside [0, {self.shape.segments})"
            )
        if stop - start <= len(self._segments):
            segs: Iterable[int] = (s for s in range(start, stop) if s in self._segments)
        else:
            segs = sorted(s for s in self._segments if start <= s < stop)
        out: list[tuple[str, bytes]] = []
        for s in segs:
            entries = self._segments[s]
            out.extend((k, entries[k]) for k in sorted(entries))
        return out

    def segment(self, index: int) -> list[tuple[str, bytes]]:
        """Entries of one leaf segment, sorted by key."""
        return self.entries_in_range(index, index + 1)

    # -- persistence -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A msgpack/JSON-friendly snapshot (hashes are recomputed on load)."""
        return {"shape": self.shape.as_list(), "entries": [[k, d] for k, d in self.items()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MerkleTree:
        try:
            fanout, depth, size = state["shape"]
            entries = state["entries"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a Merkle tree state (want shape and entries): {exc}") from exc
        return cls.build(((k, d) for k, d in entries), Shape(fanout, depth, size))


# -- the answering side -------------------------------------------------------------------


def _answer(tree: MerkleTree, request: Any) -> Reply:
    if not isinstance(request, dict):
        raise ProtocolError(f"request must be a map, got {type(request).__name__}")
    op = request.get("op")
    if op == "root":
        shape = request.get("shape")
        if shape != tree.shape.as_list():
            raise ProtocolError(
                f"tree shape mismatch: driver has {shape}, this side has {tree.shape.as_list()}"
            )
        return {"root": tree.root, "count": len(tree)}
    if op == "children":
        parents = request.get("parents")
        if not isinstance(parents, list):
            raise ProtocolError("children request needs a list 'parents'")
        if len(parents) > MAX_PARENTS_PER_REQUEST:
            raise ProtocolError(
                f"{len(parents)} parents in one request; the limit is {MAX_PARENTS_PER_REQUEST}"
            )
        return {"hashes": tree.children_hashes(request.get("level"), parents)}
    if op == "entries":
        ranges = request.get("ranges")
        if not isinstance(ranges, list):
            raise ProtocolError("entries request needs a list 'ranges' of [start, stop]")
        total = 0
        for r in ranges:
            if not (isinstance(r, list | tuple) and len(r) == 2):
                raise ProtocolError(f"each range must be [start, stop], got {r!r}")
            if isinstance(r[0], int) and isinstance(r[1], int):
                total += r[1] - r[0]
        if total > MAX_SEGMENTS_PER_REQUEST:
            raise ProtocolError(
                f"{total} segments in one request; the limit is {MAX_SEGMENTS_PER_REQUEST}"
            )
        return {"entries": [[[k, d] for k, d in tree.entries_in_range(a, b)] for a, b in ranges]}
    raise ProtocolError(f"unknown op {op!r} (want root, children or entries)")


def answer(tree: MerkleTree, request: Any) -> Reply:
    """Serve one exchange request against ``tree``; malformed requests get ``{"error": ...}``."""
    try:
        return _answer(tree, request)
    except ProtocolError as exc:
        return {"error": str(exc)}


# -- the driving side ---------------------------------------------------------------------


@dataclass
class Diff:
    """The keys that differ between a local and a remote tree, and what finding them cost."""

    local_only: set[str] = field(default_factory=set)
    remote_only: set[str] = field(default_factory=set)
    different: set[str] = field(default_factory=set)
    round_trips: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    segments_fetched: int = 0
    remote_count: int = 0

    @property
    def keys(self) -> set[str]:
        return self.local_only | self.remote_only | self.different

    @property
    def bytes_total(self) -> int:
        return self.bytes_sent + self.bytes_received


def _field(reply: Any, name: str, kind: type, op: str) -> Any:
    if isinstance(reply, dict) and "error" in reply:
        raise ExchangeError(f"remote refused {op}: {reply['error']}")
    if not isinstance(reply, dict) or not isinstance(reply.get(name), kind):
        raise ExchangeError(f"malformed reply to {op}: want {name!r} of {kind.__name__}")
    return reply[name]


def _coalesce(ranges: list[tuple[int, int]], limit: int) -> list[list[list[int]]]:
    """Merge adjacent ranges, then split into batches of at most ``limit`` segments each."""
    merged: list[list[int]] = []
    for start, stop in sorted(ranges):
        if merged and merged[-1][1] == start:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    batches: list[list[list[int]]] = []
    batch: list[list[int]] = []
    room = limit
    for start, stop in merged:
        while start < stop:
            take = min(stop - start, room)
            batch.append([start, start + take])
            start += take
            room -= take
            if room == 0:
                batches.append(batch)
                batch, room = [], limit
    if batch:
        batches.append(batch)
    return batches


def exchange(
    local: MerkleTree, *, max_parents: int = 512, max_segments: int = 4096
) -> Generator[Request, Reply, Diff]:
    """The driver as a generator: yields requests, is sent replies, returns the ``Diff``.

    Byte and round-trip counts are filled in by the runner (``diff`` / ``diff_async``).
    The local tree may change between steps (writes keep landing); a key changed mid-exchange is
    at worst reported stale and settled by the next exchange.
    """
    if not 1 <= max_parents <= MAX_PARENTS_PER_REQUEST:
        raise ValueError(f"max_parents must be in 1..{MAX_PARENTS_PER_REQUEST}")
    if not 1 <= max_segments <= MAX_SEGMENTS_PER_REQUEST:
        raise ValueError(f"max_segments must be in 1..{MAX_SEGMENTS_PER_REQUEST}")
    shape, empty, size = local.shape, local.empty, local.shape.digest_size
    diff = Diff()
    reply = yield {"op": "root", "shape": shape.as_list()}
    remote_root = _field(reply, "root", bytes, "root")
    diff.remote_count = reply.get("count", 0) if isinstance(reply.get("count"), int) else 0
    if len(remote_root) != size:
        raise ExchangeError(f"remote root is {len(remote_root)} bytes, want {size}")
    local_root = local.root
    if remote_root == local_root:
        return diff
    fetch: list[tuple[int, int]] = []  # segment ranges whose remote entries we need
    frontier: list[int] = []  # differing nodes of the current level, non-empty on both sides
    if remote_root == empty:
        diff.local_only.update(k for k, _ in local.items())
        return diff
    if local_root == empty:
        fetch.append((0, shape.segments))
    else:
        frontier = [0]
    for level in range(1, shape.depth + 1):
        if not frontier:
            break
        next_frontier: list[int] = []
        for at in range(0, len(frontier), max_parents):
            chunk = frontier[at : at + max_parents]
            reply = yield {"op": "children", "level": level, "parents": chunk}
            remote_blob = _field(reply, "hashes", bytes, "children")
            if len(remote_blob) != len(chunk) * shape.fanout * size:
                raise ExchangeError(
                    f"children reply has {len(remote_blob)} bytes for {len(chunk)} parents"
                )
            local_blob = local.children_hashes(level, chunk)
            for i in range(len(chunk) * shape.fanout):
                remote_hash = remote_blob[i * size : (i + 1) * size]
                local_hash = local_blob[i * size : (i + 1) * size]
                if remote_hash == local_hash:
                    continue
                idx = chunk[i // shape.fanout] * shape.fanout + i % shape.fanout
                if remote_hash == empty:
                    start, stop = local.subtree_range(level, idx)
                    diff.local_only.update(k for k, _ in local.entries_in_range(start, stop))
                elif local_hash == empty:
                    fetch.append(local.subtree_range(level, idx))
                else:
                    next_frontier.append(idx)
        frontier = next_frontier
    fetch.extend((s, s + 1) for s in frontier)  # differing leaf segments
    for batch in _coalesce(fetch, max_segments):
        reply = yield {"op": "entries", "ranges": batch}
        lists = _field(reply, "entries", list, "entries")
        if len(lists) != len(batch):
            raise ExchangeError(f"entries reply has {len(lists)} lists for {len(batch)} ranges")
        for (start, stop), remote_entries in zip(batch, lists, strict=True):
            diff.segments_fetched += stop - start
            remote: dict[str, bytes] = {}
            for pair in remote_entries:
                if not (
                    isinstance(pair, list | tuple)
                    and len(pair) == 2
                    and isinstance(pair[0], str)
                    and isinstance(pair[1], bytes)
                ):
                    raise ExchangeError(f"malformed entry in entries reply: {pair!r}")
                remote[pair[0]] = pair[1]
            local_entries = dict(local.entries_in_range(start, stop))
            for key, digest in local_entries.items():
                other = remote.get(key)
                if other is None:
                    diff.local_only.add(key)
                elif other != digest:
                    diff.different.add(key)
            diff.remote_only.update(k for k in remote if k not in local_entries)
    return diff


def _wire(obj: Any) -> tuple[Any, int]:
    """``obj`` as the far side would decode it, and its encoded size."""
    payload = msgpack.packb(obj, use_bin_type=True)
    return msgpack.unpackb(payload, raw=False, strict_map_key=False), len(payload)


class _Meter:
    """Drives ``exchange`` one step at a time and counts what crosses the wire.

    Requests are only measured, not round-tripped: ``exchange`` builds them of maps, lists, ints
    and strings, which msgpack decodes as they were. A reply from an in-process tree is
    round-tripped (as the far side would see it); one that came over a transport
    (``decoded=True``) was decoded from msgpack already, so it is only measured too."""

    def __init__(self, local: MerkleTree, limits: dict[str, int]) -> None:
        self.steps = exchange(local, **limits)
        self.sent = self.received = self.trips = 0
        self.result: Diff | None = None
        self._pack = msgpack.Packer(use_bin_type=True).pack  # one per exchange: no sharing
        self.request: Request | None = self._advance(None, first=True)

    def _advance(self, reply: Reply | None, first: bool = False) -> Request | None:
        try:
            request = next(self.steps) if first else self.steps.send(reply)
        except StopIteration as done:
            self.result = done.value
            self.result.bytes_sent, self.result.bytes_received = self.sent, self.received
            self.result.round_trips = self.trips
            return None
        self.sent += len(self._pack(request))
        return request

    def feed(self, raw_reply: Any, decoded: bool = False) -> None:
        if decoded:
            reply, n = raw_reply, len(self._pack(raw_reply))
        else:
            reply, n = _wire(raw_reply)
        self.received += n
        self.trips += 1
        self.request = self._advance(reply)


def diff(
    local: MerkleTree,
    remote: MerkleTree | Callable[[Request], Reply],
    **limits: int,
) -> Diff:
    """Find the keys that differ from ``remote``: another tree in this process, or a blocking
    ``ask(request) -> reply`` callable. Bytes are counted as msgpack on the wire.
    ``limits``: ``max_parents`` / ``max_segments`` per request (see ``exchange``)."""
    if isinstance(remote, MerkleTree):
        tree = remote
        remote = lambda req: answer(tree, req)  # noqa: E731
    if inspect.iscoroutinefunction(remote):
        raise TypeError("diff() got an async ask callable; use diff_async()")
    meter = _Meter(local, limits)
    while meter.request is not None:
        meter.feed(remote(meter.request))
    assert meter.result is not None
    return meter.result


async def diff_async(
    local: MerkleTree,
    remote: MerkleTree | Callable[[Request], Awaitable[Reply]],
    **limits: int,
) -> Diff:
    """Like ``diff``, with an async ``ask(request) -> reply`` (e.g. over the internode
    transport; its replies are taken as msgpack decoded them) or a tree in this process."""
    meter = _Meter(local, limits)
    while meter.request is not None:
        if isinstance(remote, MerkleTree):
            meter.feed(answer(remote, meter.request))
            continue
        raw = remote(meter.request)
        if inspect.isawaitable(raw):
            # an async ask is a transport's (the internode RPC): its reply came decoded from
            # msgpack, so a second round trip would change nothing
            meter.feed(await raw, decoded=True)
        else:
            meter.feed(raw)
    assert meter.result is not None
    return meter.result
