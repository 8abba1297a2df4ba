"""Dotted version vectors: causality per key, siblings, and the client's opaque context.

Every stored version carries a *dot* (actor, counter): the one event that created it, and its
*past*: the version vector the writer had seen (the client's context). A version is obsolete when
another version's past covers its dot. This is what plain per-node vector clocks get wrong: two
writes made through the same coordinator with the same stale context get dots (X, 3) and (X, 4)
with the same past, so neither covers the other and both are kept as siblings (Preguica et al.
2010; Almeida et al. 2014, "Scalable and Accurate Causality Tracking").

Replicas always exchange the coordinator's whole sibling set, never a lone version, so a replica
that holds (X, 4) also holds (X, 3) or something that made it obsolete; that keeps the plain
version-vector context sound.

A version vector maps actor -> (counter, wall ms when that counter was made). The timestamps only
serve pruning. Pruning (`clock_prune_max`, off by default) drops the oldest entries of a new
version's past. RISK: a pruned past no longer covers the versions it had seen, so old, overwritten
values (and deleted keys) can come back as siblings. Pruning never drops data, it resurrects it.

Pure functions only: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

# actor -> (counter, timestamp_ms)
VV = dict[str, tuple[int, int]]

CONTEXT_PREFIX = "c1."


class ContextError(ValueError):
    """A context string that cannot be read."""


@dataclass(frozen=True, slots=True)
class Version:
    actor: str
    counter: int
    ts: int  # wall ms at the coordinator when it was written
    past: tuple[tuple[str, int, int], ...]  # sorted (actor, counter, ts): the causal past
    value: str | None  # the client's JSON value as canonical JSON text; None for a tombstone
    tombstone: bool = False

    @property
    def id(self) -> str:
        return f"{self.actor}:{self.counter}"

    def past_vv(self) -> VV:
        return {a: (c, t) for a, c, t in self.past}

    def clock(self) -> VV:
        """The version's full clock: its past plus its own dot."""
        vv = self.past_vv()
        return vv_merge(vv, {self.actor: (self.counter, self.ts)})

    def covers(self, other: Version) -> bool:
        """True when this version's past includes `other`'s dot (so `other` is obsolete)."""
        for a, c, _ in self.past:
            if a == other.actor:
                return c >= other.counter
        return False

    def sort_key(self) -> tuple[str, int]:
        return (self.actor, self.counter)


def vv_merge(a: Mapping[str, tuple[int, int]], b: Mapping[str, tuple[int, int]]) -> VV:
    """Pointwise maximum; on equal counters the later timestamp wins (so merge is a semilattice)."""
    out = dict(a)
    for actor, entry in b.items():
        mine = out.get(actor)
        if mine is None or entry > mine:
            out[actor] = entry
    return out


def vv_descends(a: Mapping[str, tuple[int, int]], b: Mapping[str, tuple[int, int]]) -> bool:
    """True when `a` has seen everything `b` has (counters only; timestamps do not matter)."""
    for actor, (counter, _) in b.items():
        if counter > 0 and a.get(actor, (0, 0))[0] < counter:
            return False
    return True


def vv_counters(vv: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """The readable clock: actor -> counter."""
    return {a: c for a, (c, _) in sorted(vv.items())}


def vv_prune(vv: Mapping[str, tuple[int, int]], max_entries: int) -> VV:
    """Keep at most `max_entries` entries, dropping the oldest timestamps first; 0 keeps all."""
    if max_entries <= 0 or len(vv) <= max_entries:
        return dict(vv)
    newest = sorted(vv.items(), key=lambda kv: (kv[1][1], kv[1][0], kv[0]), reverse=True)
    return dict(newest[:max_entries])


def sync(*sets: Iterable[Version]) -> list[Version]:
    """Merge sibling sets: keep every version that no other version covers, sorted by id.

    Commutative, associative and idempotent. Two versions with the same dot are the same event;
    if they ever differ (a reused counter) the larger one is kept so that the result is the same
    on every replica.
    """
    by_dot: dict[tuple[str, int], Version] = {}
    for versions in sets:
        for v in versions:
            key = (v.actor, v.counter)
            old = by_dot.get(key)
            if old is None or _tiebreak(v) > _tiebreak(old):
                by_dot[key] = v
    # max counter covered per actor across all pasts; a dot is obsolete if any past covers it
    covered: dict[str, int] = {}
    for v in by_dot.values():
        for a, c, _ in v.past:
            if c > covered.get(a, 0):
                covered[a] = c
    kept = [v for (a, c), v in by_dot.items() if covered.get(a, 0) < c]
    kept.sort(key=Version.sort_key)
    return kept


def _tiebreak(v: Version) -> tuple:
    return (v.ts, v.past, v.tombstone, v.value or "")


def context_of(versions: Iterable[Version]) -> VV:
    """The causal context covering every given version (what a client gets on read)."""
    out: VV = {}
    for v in versions:
        out = vv_merge(out, v.clock())
    return out


def next_counter(local: Iterable[Version], ctx: Mapping[str, tuple[int, int]], actor: str,
                 floor: int = 0) -> int:
    """A counter for `actor` above every counter of it seen locally, in the context, and
    `floor` (the highest counter the actor ever handed out for any key: see replica.DotCounter;
    without it a reaped key's counters would start again at 1)."""
    top = max(ctx.get(actor, (0, 0))[0], floor)
    for v in local:
        if v.actor == actor and v.counter > top:
            top = v.counter
        for a, c, _ in v.past:
            if a == actor and c > top:
                top = c
    return top + 1


def write(local: list[Version], ctx: Mapping[str, tuple[int, int]], actor: str, now_ms: int,
          value: str | None, tombstone: bool, prune_max: int = 0,
          counter: int | None = None) -> tuple[Version, list[Version]]:
    """Coordinate a write at `actor`: the new version and the resulting local sibling set.
    `counter` is the new dot's counter when the caller chose it (it must be at least
    `next_counter(local, ctx, actor)`); None derives it from `local` and `ctx` alone."""
    past = vv_prune(ctx, prune_max)
    new = Version(
        actor=actor,
        counter=next_counter(local, ctx, actor) if counter is None else counter,
        ts=now_ms,
        past=tuple(sorted((a, c, t) for a, (c, t) in past.items())),
        value=None if tombstone else value,
        tombstone=tombstone,
    )
    return new, sync(local, [new])


# ---- encoding: sibling sets (storage and the wire) and the client's context string ----

def encode_versions(versions: Iterable[Version]) -> bytes:
    return msgpack.packb(
        [[v.actor, v.counter, v.ts, [list(e) for e in v.past], v.value, v.tombstone]
         for v in versions],
        use_bin_type=True,
    )


def decode_versions(blob: bytes | None) -> list[Version]:
    """Decode a sibling set; raises ValueError on anything malformed."""
    if not blob:
        return []
    if len(blob) <= DECODE_CACHE_BLOB:
        return list(_decode_cached(blob))
    return list(_decode(blob))


# A sibling set is decoded again and again (by each replica a write reaches, by the coordinator of
# every read of the key, by read repair and anti-entropy), and replicas that agree hold the same
# bytes; Versions are immutable, so the decoded tuple is shared. Bounded: small sets only.
DECODE_CACHE_BLOB = 16 << 10


@functools.lru_cache(maxsize=1024)
def _decode_cached(blob: bytes) -> tuple[Version, ...]:
    return _decode(blob)


def _decode(blob: bytes) -> tuple[Version, ...]:
    try:
        raw = msgpack.unpackb(blob, raw=False)
        return tuple(
            Version(str(a), int(c), int(ts), tuple((str(pa), int(pc), int(pt)) for pa, pc, pt in p),
                    None if val is None else str(val), bool(tomb))
            for a, c, ts, p, val, tomb in raw
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError) as e:
        raise ValueError(f"malformed sibling set: {e}") from e


def encode_context(vv: Mapping[str, tuple[int, int]]) -> str:
    packed = msgpack.packb(sorted([a, c, t] for a, (c, t) in vv.items()), use_bin_type=True)
    return CONTEXT_PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def context_key(cluster_secret: str) -> bytes | None:
    """The key that signs client contexts, derived from the cluster secret (None: unsigned)."""
    if not cluster_secret:
        return None
    return hmac.new(cluster_secret.encode(), b"dynamo client context v1", hashlib.sha256).digest()


def _context_tag(unsigned: str, key: bytes) -> str:
    pads = _HMAC_PADS.get(key)
    if pads is None:
        pads = _HMAC_PADS[key] = _hmac_pads(key)
    inner = pads[0].copy()
    inner.update(unsigned.encode("ascii"))
    outer = pads[1].copy()
    outer.update(inner.digest())
    tag = outer.digest()[:16]
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")


# HMAC-SHA256 (RFC 2104) from the key's inner and outer pad states, hashed once per key: each tag
# then costs two copies and two updates. `hmac.digest` sets OpenSSL's HMAC up again every call
# (a sixth of a write's context sealing in a profile); the tags are the same bytes.
_HMAC_PADS: dict[bytes, tuple[Any, Any]] = {}


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    if len(key) > 64:  # SHA-256's block size
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)),
            hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def seal_context(vv: Mapping[str, tuple[int, int]], key: bytes | None) -> str:
    """The context string a client gets: `encode_context`, plus `.` and a 128-bit HMAC tag when
    the cluster has a secret, so that a client can hand back only what some node issued (a
    forged counter of 2**63-1 once locked a key for good: issue 17)."""
    text = encode_context(vv)
    return text if key is None else f"{text}.{_context_tag(text, key)}"


def open_context(text: str | None, key: bytes | None, max_entries: int = 1 << 20) -> VV:
    """Read and check a client's context: its tag (when `key`), then its contents. Raises
    ContextError saying what is wrong."""
    if text is None or text == "":
        return {}
    if not text.isascii():  # every context a node issues is base64url: the tag needs ASCII
        raise ContextError("context is not one this store produced (it holds non-ASCII "
                           "characters): pass back a context exactly as a read returned it")
    if key is not None:
        unsigned, dot, tag = text.rpartition(".")
        if not dot or unsigned in ("", "c1") or not hmac.compare_digest(
                tag.encode("ascii", "replace"), _context_tag(unsigned, key).encode("ascii")):
            raise ContextError("context was not issued by this cluster (its signature does "
                               "not match): pass back a context exactly as a read returned it")
    vv = decode_context(text)
    if len(vv) > max_entries:
        raise ContextError(f"context has {len(vv)} entries, over the limit of {max_entries}")
    if any(not a for a in vv):
        raise ContextError("context names an empty actor")
    return vv


def decode_context(text: str | None) -> VV:
    """Read a client's context (its tag, if any, is ignored: see `open_context`); None or "" is
    the empty context. Raises ContextError."""
    if text is None or text == "":
        return {}
    if not isinstance(text, str) or not text.startswith(CONTEXT_PREFIX):
        raise ContextError("context is not one this store produced (expected 'c1.' prefix)")
    body = text[len(CONTEXT_PREFIX):].partition(".")[0]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        raw = msgpack.unpackb(packed, raw=False)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError) as e:
        raise ContextError(f"context cannot be decoded: {e}") from e
    if not isinstance(raw, list):
        raise ContextError("context does not hold a version vector")
    out: VV = {}
    for entry in raw:
        if (not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str)
                or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 63
                           for x in entry[1:])):
            raise ContextError("context holds a malformed entry")
        out[entry[0]] = (entry[1], entry[2])
    return out


def version_json(v: Version) -> dict:
    """A version in readable JSON, as /admin/replicas shows it."""
    return {
        "id": v.id,
        "value": None if v.value is None else json.loads(v.value),
        "tombstone": v.tombstone,
        "dot": {"actor": v.actor, "counter": v.counter, "ts": v.ts},
        "clock": vv_counters(v.clock()),
    }
