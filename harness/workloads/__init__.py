"""Workloads: what the clients do, and how each operation's outcome is recorded."""

from __future__ import annotations

import random

from harness.workloads.base import Completion, Request, Workload
from harness.workloads.cart import CartWorkload
from harness.workloads.cas_register import CasRegisterWorkload
from harness.workloads.register import RegisterWorkload
from harness.workloads.set_ import SetWorkload

WORKLOADS: dict[str, type[Workload]] = {
    "cart": CartWorkload,
    "register": RegisterWorkload,
    "set": SetWorkload,
    "cas-register": CasRegisterWorkload,
}
# a store whose client cannot run a workload runs its stand-in, if it can: a register on a store
# without siblings is Jepsen's register, with cas (etcd)
STAND_INS = {"register": "cas-register"}


def workload_for(name: str, ops: frozenset[str]) -> str:
    """The workload a store with client operations `ops` runs when asked for `name`."""
    cls, stand_in = WORKLOADS.get(name), STAND_INS.get(name)
    if cls is not None and not cls.accepts(ops) and stand_in and WORKLOADS[stand_in].accepts(ops):
        return stand_in
    return name


def make_workload(name: str, keys: int, rng: random.Random,
                  ops_per_key: int | None = None) -> Workload:
    """The workload called `name`, over `keys` keys at a time where it has several, each
    rotated out after `ops_per_key` operations (0: never; None: the workload's default)."""
    try:
        cls = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}") from None
    every = cls.default_ops_per_key if ops_per_key is None else ops_per_key
    return cls(keys=keys, rng=rng, ops_per_key=every)


__all__ = ["STAND_INS", "WORKLOADS", "Completion", "Request", "Workload", "make_workload",
           "workload_for"]
