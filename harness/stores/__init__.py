"""The stores the harness can test, and the checks that refuse a test a store cannot run.

Adding a store is one new module (a `Store` subclass and its `Client`) and one line in `STORES`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from harness.settings import ClusterSettings
from harness.stores.base import FinalState, NodeCounters, Roles, SelfPartitioning, Store
from harness.stores.dynamo import DynamoStore
from harness.stores.etcd import EtcdStore
from harness.stores.redis import RedisStore

STORES: dict[str, type[Store]] = {
    "dynamo": DynamoStore,
    "etcd": EtcdStore,
    "redis": RedisStore,
}
DEFAULT_STORE = "dynamo"
# why a store whose `faults` leave one out cannot take it, unless the store says otherwise
UNSUPPORTED_WHY = {
    "power": "its data directory is not laid on faultfs yet (only the reference store's is)",
    "wipe": "the harness does not know where its nodes keep their data (Store.data_paths)",
}
# the wipe nemesis loses one node's disk: with W = 1 an acknowledged write may have been on it alone
WIPE_MIN_W = 2


def store_class(name: str) -> type[Store]:
    try:
        return STORES[name]
    except KeyError:
        raise ValueError(f"unknown store {name!r}; choose from {', '.join(STORES)}") from None


def make_store(name: str, cluster: ClusterSettings, options: Sequence[str] = ()) -> Store:
    return store_class(name)(cluster, options)


def store_errors(name: str, workload: str, faults: Sequence[str], platform: str,
                 options: Sequence[str], cluster: ClusterSettings,
                 partitions: Sequence[str] = ()) -> list[str]:
    """Why this store cannot run this test, one message each (empty: it can)."""
    from harness.workloads import WORKLOADS
    from nemesis.grudges import TARGETED
    from nemesis.schedule import base_fault

    if name not in STORES:
        return [f"unknown store {name!r}; choose from {', '.join(STORES)}"]
    cls = STORES[name]
    errs: list[str] = []
    # docker: the image has the programs; ssh: the hosts do (checked when they are reached)
    missing = cls.missing() if platform not in ("docker", "ssh") else None
    if missing:
        errs.append(missing)
    for option in options:
        if option not in cls.options:
            known = "; ".join(f"{k}: {v}" for k, v in cls.options.items())
            errs.append(f"--store-option {option!r}: the {name} store has "
                        + (f"these options: {known}" if known else "no store options"))
    wl = WORKLOADS.get(workload)
    if wl is not None and not wl.accepts(cls.client_class.ops):
        lacking = ", ".join(sorted(wl.needs - cls.client_class.ops))
        fits = [w for w, c in WORKLOADS.items() if c.accepts(cls.client_class.ops)]
        errs.append(f"the {workload} workload needs {lacking}, which the {name} store's client "
                    f"does not perform; workloads the {name} store can run: "
                    f"{', '.join(fits) or 'none'}")
    for fault in faults:
        if base_fault(fault) not in cls.faults:
            why = cls.unsupported_faults.get(fault) or UNSUPPORTED_WHY.get(fault, "not supported")
            errs.append(f"the {name} store cannot be tested under the {fault} nemesis: {why}")
    if "wipe" in faults and cluster.w < WIPE_MIN_W:
        errs.append(f"the wipe nemesis deletes one node's data, so it needs W >= {WIPE_MIN_W} "
                    f"(got W = {cluster.w}): a write acknowledged by one node alone may be lost "
                    "with its disk, which the store never promised to survive")
    if platform == "sim" and platform not in cls.platforms:
        errs.append(f"the sim platform runs the reference dynamo store's own code in one process "
                    f"on virtual time; the {name} store needs real processes: run it on "
                    f"{', '.join(cls.platforms)}")
    elif platform not in cls.platforms:
        errs.append(f"the {name} store runs on the {', '.join(cls.platforms)} platform(s), "
                    f"not {platform}")
    elif (platform == "local" and "partition" in faults and not issubclass(cls, SelfPartitioning)
          and os.geteuid() != 0):
        errs.append(f"partitions of the {name} store on the local platform are iptables rules "
                    "between the members' loopback addresses, which need root; run as root, or "
                    "use --platform netns (also root) or a store that partitions itself (dynamo)")
    for shape in partitions:
        role = TARGETED.get(shape)
        if role is not None and (not issubclass(cls, Roles) or role not in cls.roles):
            holders = [n for n, c in STORES.items() if issubclass(c, Roles) and role in c.roles]
            errs.append(f"the {shape} partition needs a store that can tell which node is the "
                        f"{role} ({', '.join(holders) or 'none'}); the {name} store cannot")
    if not cls.takes_node_settings and (cluster.bugs or cluster.node_settings):
        errs.append(f"--bug and --node-setting configure the reference dynamo store, not {name}")
    return errs


__all__ = ["DEFAULT_STORE", "STORES", "FinalState", "NodeCounters", "Roles", "SelfPartitioning",
           "Store",
           "make_store", "store_class", "store_errors"]
