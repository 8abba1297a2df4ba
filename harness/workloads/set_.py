"""Jepsen's 2013 Riak set test: unique integers added to one key by read-merge-write."""

from __future__ import annotations

from harness.workloads.base import Op
from harness.workloads.cart import UnionWorkload

SET_KEY = "set"


class SetWorkload(UnionWorkload):
    name = "set"
    description = "one key: add unique integers by read-merge-write, then one final read"

    def next_op(self) -> Op:
        return Op("add", SET_KEY, self.unique())

    def all_keys(self) -> list[str]:
        return [SET_KEY]
