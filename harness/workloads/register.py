"""Registers: unique writes (with the context read just before), reads of the sibling values, and
now and then a delete of whatever the preceding read returned; a key's last operation before it
retires is always such a delete."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from harness.client import Client, OpFailed, OpUnknown, Reply
from harness.workloads.base import (
    Completion,
    Request,
    Workload,
    attach_extra,
    read_extra,
    read_then,
    write_extra,
)

# Deletes are rare enough that most keys hold values most of the time (reads stay informative),
# and frequent enough that a key idle since a crash began is often deleted before it is rewritten,
# which is what resurrection needs (suites/smoke.toml `bug-reap-early`).
DELETE_P = 0.25
# Now and then a write uses the context of an earlier read of its key instead of a fresh one, as a
# client does that kept a page open for a while (Riak's vclock round trip): the store must keep the
# values that read never saw as siblings of this write. Such a context may predate a delete and
# the reap of its tombstone, which is what exposes a store that reuses dots after a reap
# (suites/smoke.toml `bug-reuse-dots`).
STALE_P = 0.2
# Up to this many earlier reads are held per key (several users with the page open), the oldest
# used first: a key that retires with reads held brings them back when it is revisited, where one
# held read, often spent just before the key retired, came back rarely.
HELD_PER_KEY = 3
# A key's last operation before it retires is a delete: the key then stays deleted until the final
# reads (or a revisit), so whatever brings a deleted value back later (a tombstone reaped while a
# stale copy still waited in a hint, a replica that missed the delete) is still in place to be read.
# Ending keys on a write instead hides that: the write's context covers the old value.


class RegisterWorkload(Workload):
    name = "register"
    needs = frozenset({"read", "write", "delete", "siblings"})
    key_prefix = "r"
    description = ("per key: write unique values with the context of a prior read (now and then "
                   "an old one); read siblings; sometimes delete what a read returned; keys "
                   "retire after 50 operations by default, with a delete")
    default_ops_per_key = 50
    # half the retiring keys make way for a long-idle one (keys.py): its tombstones have been
    # reaped by then (the harness gives the reference store a 3 s grace), and the contexts held
    # from its first life come back with it
    revisit = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: dict[str, list[Reply]] = {}  # key -> earlier reads, oldest first
        self.stale: dict[int, Reply] = {}  # write value -> the held read it writes with

    def next_op(self) -> Request:
        key = self.keyspace.pick()
        x = self.rng.random()
        if x < DELETE_P or self.keyspace.retiring:
            return Request("delete", key)
        if x < DELETE_P + (1 - DELETE_P) / 2:
            value = self.unique()
            if self.held.get(key) and self.rng.random() < STALE_P:
                self.stale[value] = self.held[key].pop(0)
            return Request("write", key, value)
        return Request("read", key)

    async def perform(self, client: Client, op: Request) -> Completion:
        assert op.key is not None
        if op.f == "read":
            reply = await client.get(op.key)
            held = self.held.setdefault(op.key, [])
            if len(held) < HELD_PER_KEY:
                held.append(reply)
            return Completion("ok", list(reply.values), read_extra(reply))
        if op.f == "delete":
            return await read_then(client, op.key, lambda current: self._delete(client, op,
                                                                                current))

        async def write(current: Reply, stale: bool = False) -> Completion:
            marks = {"stale": True} if stale else {}
            written = await _based_on(current, client.put(op.key, op.value, current.context),
                                      marks)
            return Completion("ok", op.value, {**write_extra(written, current),
                                               **read_record(current), **marks})

        held = self.stale.pop(op.value, None)
        if held is not None:
            return await write(held, stale=True)
        return await read_then(client, op.key, write)

    async def _delete(self, client: Client, op: Request, current: Reply) -> Completion:
        assert op.key is not None
        if not current.values:
            # the delete was already invoked, so it is recorded as one that certainly did nothing
            e = OpFailed("nothing to delete: the read before it found no values")
            attach_extra(e, read_record(current))
            raise e
        deleted = await _based_on(current, client.delete(op.key, current.context))
        # the ok value names exactly the values the tombstone covers (values are unique per write)
        return Completion("ok", _sorted(current.values),
                          {**write_extra(deleted, current), **read_record(current)})


def read_record(current: Reply) -> dict[str, Any]:
    """`read`: the values a write or delete was based on. Checkers judge what it superseded from
    these values, not from the store's clocks (checkers/preservation.py)."""
    return {"read": _sorted(current.values)}


async def _based_on(current: Reply, request: Awaitable[Reply],
                    marks: dict[str, Any] | None = None) -> Reply:
    """Await the write part; if it fails or its outcome is unknown, the fail/info completion
    still records what the read returned (an info write may have happened), and `marks`."""
    try:
        return await request
    except (OpFailed, OpUnknown) as e:
        attach_extra(e, {**read_record(current), **(marks or {})})
        raise


def _sorted(values: list[Any]) -> list[Any]:
    return sorted(values, key=lambda v: (str(type(v)), v))
