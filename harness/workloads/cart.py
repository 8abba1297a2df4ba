"""The paper's shopping cart: adds by read-modify-write with the context, union of siblings."""

from __future__ import annotations

from harness.client import Client, Reply
from harness.workloads.base import (
    Completion,
    Request,
    Workload,
    read_extra,
    read_then,
    sorted_union,
    write_extra,
)


class UnionWorkload(Workload):
    """Grow-only sets kept as a Dynamo value: `add` reads, merges every sibling by union, adds its
    element and writes with the context it read; `read` answers the union of the siblings."""

    needs = frozenset({"read", "write", "siblings"})

    async def perform(self, client: Client, op: Request) -> Completion:
        assert op.key is not None
        if op.f == "read":
            reply = await client.get(op.key)
            return Completion("ok", sorted_union(reply.values), read_extra(reply))

        async def add(current: Reply) -> Completion:
            elements = sorted_union([*current.values, [op.value]])
            written = await client.put(op.key, elements, current.context)
            return Completion("ok", op.value, write_extra(written, current))

        return await read_then(client, op.key, add)


class CartWorkload(UnionWorkload):
    name = "cart"
    description = ("shopping carts: add unique items by read-merge-write with the context; read; "
                   "carts retire after 50 operations by default")
    default_ops_per_key = 50

    def next_op(self) -> Request:
        key = self.keyspace.pick()
        if self.rng.random() < 0.75:
            return Request("add", key, f"item-{self.unique()}")
        return Request("read", key)
