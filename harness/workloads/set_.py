"""Jepsen's 2013 Riak set test: unique integers added to one key by read-merge-write."""

from __future__ import annotations

from harness.client import NodeClient, Reply
from harness.workloads.base import (
    Completion,
    Op,
    Workload,
    read_extra,
    read_then,
    sorted_union,
    write_extra,
)

SET_KEY = "set"


class SetWorkload(Workload):
    name = "set"
    description = "one key: add unique integers by read-merge-write, then one final read"

    def next_op(self) -> Op:
        return Op("add", SET_KEY, self.unique())

    def all_keys(self) -> list[str]:
        return [SET_KEY]

    async def perform(self, client: NodeClient, op: Op) -> Completion:
        assert op.key is not None
        if op.f == "read":
            reply = await client.get(op.key)
            return Completion("ok", sorted_union(reply.values), read_extra(reply))

        async def add(current: Reply) -> Completion:
            elements = sorted_union([*current.values, [op.value]])
            written = await client.put(op.key, elements, current.context)
            return Completion("ok", op.value, write_extra(written, current))

        return await read_then(client, op.key, add)
