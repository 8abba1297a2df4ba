"""What `harness hunt --bug NAME` holds fixed while it searches schedules: the settings under
which each seeded bug can show at all (the smoke suite's, suites/smoke.toml), and the faults worth
drawing. The correct store (no bug) is hunted under every fault, with the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Profile:
    workload: str = "cart"
    faults: tuple[str, ...] = ("partition", "crash", "pause", "clock", "packet")
    cluster: dict[str, Any] = field(default_factory=dict)  # ClusterSettings fields
    node_settings: dict[str, Any] = field(default_factory=dict)
    ops_per_key: int | None = None
    keys: tuple[int, int] = (1, 6)  # drawn from this range


NO_REPAIR = {"read_repair": False, "anti_entropy": False}
PROFILES: dict[str, Profile] = {
    "": Profile(),
    "lww": Profile(faults=("partition",)),
    "blind-overwrite": Profile(faults=("partition",)),
    "ack-before-write": Profile(faults=("crash",), cluster={"nodes": 1, "n": 1, "r": 1, "w": 1}),
    "no-handoff": Profile(faults=("pause", "partition"), node_settings=NO_REPAIR,
                          ops_per_key=20),
    "read-repair-clobbers": Profile(faults=("partition",),
                                    node_settings={"anti_entropy": False}),
    "aae-noop": Profile(faults=("partition",), ops_per_key=20,
                        node_settings={"read_repair": False, "handoff_interval_ms": 3_600_000,
                                       "aae_interval_ms": 500}),
    "strict-counts-fallbacks": Profile(
        workload="register", faults=("partition",),
        cluster={"sloppy": False, "r": 1, "w": 3},
        node_settings={"read_repair": False, "handoff_interval_ms": 3_600_000}),
    "stale-read-r1": Profile(workload="register", faults=("partition",),
                             cluster={"sloppy": False, "n": 2, "r": 2, "w": 1},
                             node_settings={"read_repair": False}),
    "reap-early": Profile(workload="register", faults=("crash",), ops_per_key=4,
                          cluster={"request_timeout_ms": 250}, keys=(10, 80),
                          node_settings={"handoff_interval_ms": 3_600_000,
                                         "tombstone_grace_ms": 500, "reap_interval_ms": 100,
                                         "aae_interval_ms": 1000}),
    "reuse-dots": Profile(workload="register", faults=(), keys=(5, 40),
                          cluster={"request_timeout_ms": 250},
                          node_settings={"tombstone_grace_ms": 500, "reap_interval_ms": 100}),
    "preflist-vnodes": Profile(faults=("crash",), ops_per_key=20),
}


def profile_for(bugs: list[str]) -> Profile:
    """The first named bug's profile (the correct store's without one)."""
    for bug in bugs:
        if bug in PROFILES:
            return PROFILES[bug]
    return PROFILES[""]

KNOWN_PROFILE_BUGS = tuple(b for b in PROFILES if b)
