"""Jepsen's 2013 Riak set test: unique integers added to one key, by read-merge-write with the
context on a store with siblings (the reference node), or by the store's own set add where it has
one (Redis SADD / SMEMBERS)."""

from __future__ import annotations

from harness.client import Client
from harness.workloads.base import Completion, Request
from harness.workloads.cart import UnionWorkload

SET_KEY = "set"


class SetWorkload(UnionWorkload):
    name = "set"
    description = "one key: add unique integers by read-merge-write, then one final read"

    NATIVE = frozenset({"add", "read-set"})

    @classmethod
    def accepts(cls, ops: frozenset[str]) -> bool:
        return ops >= cls.NATIVE or cls.needs <= ops

    def next_op(self) -> Request:
        return Request("add", SET_KEY, self.unique())

    async def perform(self, client: Client, op: Request) -> Completion:
        if not client.ops >= self.NATIVE:
            return await super().perform(client, op)
        assert op.key is not None
        if op.f == "read":
            reply = await client.read_set(op.key)
            return Completion("ok", sorted(reply.values), dict(reply.meta))
        reply = await client.add(op.key, op.value)
        return Completion("ok", op.value, dict(reply.meta))

    def all_keys(self) -> list[str]:
        return [SET_KEY]
