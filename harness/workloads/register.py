"""Registers: unique writes (with the context read just before) and reads of the sibling values."""

from __future__ import annotations

from harness.client import NodeClient, Reply
from harness.workloads.base import Completion, Op, Workload, read_extra, read_then, write_extra


class RegisterWorkload(Workload):
    name = "register"
    description = "per key: write unique values with the context of a prior read; read siblings"

    def all_keys(self) -> list[str]:
        return [f"r{i}" for i in range(self.keys)]

    def next_op(self) -> Op:
        key = f"r{self.rng.randrange(self.keys)}"
        if self.rng.random() < 0.5:
            return Op("write", key, self.unique())
        return Op("read", key)

    async def perform(self, client: NodeClient, op: Op) -> Completion:
        assert op.key is not None
        if op.f == "read":
            reply = await client.get(op.key)
            return Completion("ok", list(reply.values), read_extra(reply))

        async def write(current: Reply) -> Completion:
            written = await client.put(op.key, op.value, current.context)
            return Completion("ok", op.value, write_extra(written, current))

        return await read_then(client, op.key, write)
