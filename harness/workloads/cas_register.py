"""Jepsen's etcd register: reads, writes and compare-and-sets of small values (0..4) per key,
checked for linearizability against the cas-register model.

For stores with a plain register and cas (etcd); the `register` workload is the Dynamo one
(contexts, siblings, deletes). Values repeat, so the linearizability search has real work; keys
rotate every 100 operations unless --ops-per-key says otherwise, which keeps each key's history
short enough to search (Jepsen's etcd test limits operations per key too).
"""

from __future__ import annotations

from typing import Any

from harness.client import Client
from harness.workloads.base import Completion, Request, Workload

VALUES = 5  # values 0..4, as in Jepsen's etcd test


class CasRegisterWorkload(Workload):
    name = "cas-register"
    key_prefix = "cr"
    description = ("per key: read, write 0..4, cas [old new] over 0..4 (Jepsen's etcd register); "
                   "keys rotate every 100 operations by default")
    needs = frozenset({"read", "write", "cas"})
    default_ops_per_key = 100

    def next_op(self) -> Request:
        key = self.keyspace.pick()
        x = self.rng.random()
        if x < 1 / 3:
            return Request("read", key)
        if x < 2 / 3:
            return Request("write", key, self.rng.randrange(VALUES))
        return Request("cas", key, [self.rng.randrange(VALUES), self.rng.randrange(VALUES)])

    async def perform(self, client: Client, op: Request) -> Completion:
        assert op.key is not None
        if op.f == "read":
            reply = await client.get(op.key)
            value: Any = reply.values[0] if reply.values else None
            return Completion("ok", value, dict(reply.meta))
        if op.f == "write":
            reply = await client.put(op.key, op.value)
            return Completion("ok", op.value, dict(reply.meta))
        old, new = op.value
        reply = await client.cas(op.key, old, new)
        return Completion("ok", [old, new], dict(reply.meta))
