"""The nemesis schedule: which faults start and stop when, against which nodes.

Everything here is a pure function of the node ids, the chosen faults, the interval, the time limit
and a seeded random source, so a seed reproduces the same schedule. Every `start` has a `stop`
no later than the time limit, and the schedule always ends with one `heal`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from nemesis.grudges import GRUDGES, TARGETED, grudge_to_json, isolate_node

FAULTS = ("partition", "clock", "crash", "crash-many", "pause", "packet", "power", "wipe")
# a fault that is another done harder: stores and platforms offer the base one
BASE_FAULT = {"crash-many": "crash"}
# `all` means the faults every platform can produce; packet needs tc netem on a real platform,
# power a FUSE mount (faultfs) on the local platform
ALL_FAULTS = ("partition", "clock", "crash", "pause")
# `mix`, `harness run`'s default: the same kinds, less those the store cannot be tested under.
# Not wipe: its verdict on a correct store depends on settings a default run may be given (W = 1
# keeps an acknowledged write on one disk; anti-entropy off never rebuilds the wiped node), and
# every mix seed's schedule would change (README "Faults")
MIX = ALL_FAULTS
HEAL_CRASH_CHANCE = 1 / 3  # a partition is followed by a crash at its end (_heal_crash)
# every crash period is followed by a crash of the node holding the most hints, which stays down
# this many intervals (measured: issue 14's note, sim catch of `reap-early` 67% at 1/2 and 2)
HINT_CRASH_CHANCE = 1
HINT_CRASH_INTERVALS = 4
# the role a crash after a crash aims at: the node holding the most undelivered hints
HINT_HOLDER = "hint-holder"
BEFORE_RESTART_S = 0.01  # that crash comes this long before the crashed nodes restart
FAULT_HELP = {
    "none": "no faults (a baseline run)",
    "partition": "network partitions: halves, isolate one node, majorities ring, bridge, one-way",
    "clock": "clock skew per node through libfaketime: bumps (ms to minutes) and strobes",
    "crash": "kill -9 of a random minority, restarted when the fault ends; half the time "
             "the node holding the most hints is killed just before they restart",
    "crash-many": "kill -9 of N-1 nodes at once (all but one of a key's N replicas, all but one "
                  "node for stores that copy everything), restarted when the fault ends",
    "pause": "SIGSTOP of a random minority, SIGCONT when the fault ends",
    "packet": "tc netem delay and loss on a random minority's interface (netns, docker)",
    "power": "power cut: kill -9 and drop every write not fsynced (faultfs, local platform), "
             "of the whole cluster and of a random minority in turn; restarted when it ends",
    "wipe": "a lost disk: kill -9 of one node (the same one all run, chosen by the seed), its "
            "data deleted (data, hints, identity), restarted empty with a new identity when the "
            "fault ends; only anti-entropy rebuilds what nobody rewrites (not in mix)",
    "all": "partition, clock, crash and pause combined on one schedule; with partition and "
           "crash, a third of the partitions end with a crash of one node as they heal (while "
           "hints are handed off and anti-entropy repairs)",
    "mix": "the default: `all`, less the faults the store cannot be tested under",
}


@dataclass(frozen=True)
class Action:
    """One nemesis step: `at` seconds after the workload began; `id` pairs stop with start."""

    at: float
    f: str  # "start" | "stop" | "heal"
    fault: str | None  # one of FAULTS; None for heal
    value: dict[str, Any] = field(default_factory=dict)
    id: int = 0


def parse_faults(spec: str, offered: Collection[str] | None = None) -> list[str]:
    """`"partition,clock"` -> ["partition", "clock"]; `all` -> every fault; `none` -> [];
    `mix` -> every fault of `all` that is `offered` (by the store; all of them when None)."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError("empty nemesis list; use 'none' for no faults")
    unknown = [n for n in names if n not in FAULT_HELP]
    if unknown:
        raise ValueError(
            f"unknown nemesis {', '.join(unknown)}; choose from {', '.join(FAULT_HELP)}"
        )
    if "all" in names:
        names = [*names, *ALL_FAULTS]
    if "mix" in names:
        names = [*names, *(f for f in MIX if offered is None or base_fault(f) in offered)]
    return [f for f in FAULTS if f in names]


def parse_shapes(spec: str) -> list[str]:
    """`"majorities-ring,bridge"` -> those partition shapes; `all` or "" -> every shape."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    targeted = sorted({n for n in names if n in TARGETED})
    if not names or "all" in names:
        return sorted(GRUDGES) + targeted
    unknown = [n for n in names if n not in GRUDGES and n not in TARGETED]
    if unknown:
        raise ValueError(f"unknown partition shape {', '.join(unknown)}; choose from "
                         f"{', '.join([*sorted(GRUDGES), *TARGETED])} or all")
    return sorted(set(names))


def plan(
    nodes: Sequence[str],
    faults: Sequence[str],
    interval: float,
    time_limit: float,
    rng: random.Random,
    shapes: Sequence[str] = (),
    replicas: int = 3,
    jitter: float = 0.0,
) -> list[Action]:
    """The whole schedule, sorted by time.

    Quiet periods of 0.3-0.6 intervals alternate with fault periods of one interval. When several
    faults are chosen, a period usually has one of them and sometimes two at once; crash, pause and
    power then pick disjoint nodes so that a node is never both killed and stopped. A partition
    takes a random shape from `shapes` (every shape in GRUDGES when empty). `crash-many` kills
    `replicas - 1` nodes (at least one, never all). Power cuts take, in turn, every node (not
    crashed or paused by the same period: the whole data centre loses power, which replication
    cannot mask) and a random minority. With `jitter` j > 0 each fault period and each gap is
    scaled by a factor drawn from [1 - j, 1 + j], so faults do not start and end in lockstep.
    With crash chosen, a third of the partition periods and half the crash periods that ran alone
    end with a crash of one more node (`_heal_crash`): it dies while hints and anti-entropy
    repair what the period left behind.
    `wipe` always takes the same node, drawn once from the seed (only one disk is ever lost, so
    what W >= 2 nodes acknowledged keeps a copy); the faults of its period pick other nodes.
    """
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1) (got {jitter})")

    def scaled(seconds: float) -> float:
        return seconds * rng.uniform(1 - jitter, 1 + jitter) if jitter else seconds

    if interval <= 0 or time_limit <= 0:
        raise ValueError("interval and time limit must be positive")
    shapes = sorted(parse_shapes(",".join(shapes))) if shapes else sorted(GRUDGES)
    actions: list[Action] = []
    next_id = 1
    power_cuts = 0
    # one node loses its disk, as often as the schedule says: every write acknowledged by W >= 2
    # nodes keeps a copy elsewhere (drawn only for wipe, so other schedules stay as they were)
    wiped = rng.choice(list(nodes)) if "wipe" in faults else None
    t = scaled(interval * rng.uniform(0.3, 0.6))
    while faults and t < time_limit:
        stop_at = min(t + scaled(interval), time_limit)
        kinds = [rng.choice(list(faults))]
        if len(faults) > 1 and rng.random() < 1 / 3:
            kinds = rng.sample(list(faults), 2)
        free = list(nodes)
        # wipe first: its node is fixed, and the faults it shares a period with take others
        for kind in sorted(kinds, key=lambda k: (k != "wipe", FAULTS.index(k))):
            value = _choose(kind, nodes, free, rng, shapes, replicas,
                            whole=power_cuts % 2 == 0, wiped=wiped)
            power_cuts += kind == "power"
            actions.append(Action(round(t, 3), "start", kind, value, next_id))
            actions.append(Action(round(stop_at, 3), "stop", kind, _stop_value(kind, value),
                                  next_id))
            next_id += 1
        follow = _heal_crash(kinds, faults, nodes, value, interval, stop_at, time_limit, rng)
        if follow is not None:
            victim, begin, end = follow
            actions.append(Action(round(begin, 3), "start", "crash", victim, next_id))
            actions.append(Action(round(end, 3), "stop", "crash", _stop_value("crash", victim),
                                  next_id))
            next_id += 1
            stop_at = end
        t = stop_at + scaled(interval * rng.uniform(0.3, 0.6))
    actions.sort(key=lambda a: (a.at, a.f != "stop", a.id))  # stops before starts at equal times
    actions.append(Action(round(time_limit, 3), "heal", None, {}, 0))
    return actions


def _heal_crash(kinds: list[str], faults: Sequence[str], nodes: Sequence[str], value: dict,
                interval: float, stop_at: float, time_limit: float,
                rng: random.Random) -> tuple[dict, float, float] | None:
    """Now and then a period's end brings a crash of one more node, while repair runs: (value,
    start, end). After a partition: any node, at the heal, for half an interval (it dies as hints
    are handed off and anti-entropy repairs the split). After a crash: the node that holds the
    most hints when the crashed ones are about to restart (`HINT_HOLDER`; a node that stayed up,
    drawn here, for stores that keep none), killed just before they restart so that it cannot hand
    the hints over, for `HINT_CRASH_INTERVALS` intervals: whatever the others do meanwhile (a key
    deleted and its tombstone reaped after a grace of seconds) meets those hints only when it
    comes back."""
    if stop_at >= time_limit or "crash" not in faults or kinds not in (["partition"], ["crash"]):
        return None
    if rng.random() >= (HEAL_CRASH_CHANCE if kinds == ["partition"] else HINT_CRASH_CHANCE):
        return None
    if kinds == ["partition"]:
        return ({"nodes": [rng.choice(list(nodes))], "at_heal": True}, stop_at,
                min(stop_at + interval / 2, time_limit))
    up = [n for n in nodes if n not in value["nodes"]]
    if not up:
        return None
    victim = {"nodes": [rng.choice(up)], "at_heal": True, "target": HINT_HOLDER,
              "restarting": value["nodes"]}
    return (victim, stop_at - BEFORE_RESTART_S,
            min(stop_at + HINT_CRASH_INTERVALS * interval, time_limit))


def minority(nodes: Sequence[str], rng: random.Random) -> list[str]:
    """A random non-empty minority (one node for clusters of up to two)."""
    size = rng.randint(1, max(1, (len(nodes) - 1) // 2))
    return sorted(rng.sample(list(nodes), min(size, len(nodes))))


def base_fault(fault: str) -> str:
    """What a store or platform must offer for `fault` (`crash-many` is a crash)."""
    return BASE_FAULT.get(fault, fault)


def _choose(kind: str, nodes: Sequence[str], free: list[str], rng: random.Random,
            shapes: Sequence[str], replicas: int, whole: bool = False,
            wiped: str | None = None) -> dict:
    if kind == "partition":
        shape = rng.choice(list(shapes))
        if shape in TARGETED:
            # a stand-in victim; the harness isolates whoever holds the role when it starts
            stand_in = rng.choice(list(nodes))
            return {"kind": shape, "target": TARGETED[shape],
                    "grudge": grudge_to_json(isolate_node(nodes, stand_in))}
        return {"kind": shape, "grudge": grudge_to_json(GRUDGES[shape](nodes, rng))}
    if kind == "clock":
        return _clock(nodes, rng)
    if kind == "wipe":
        assert wiped is not None
        free.remove(wiped)  # first of its period: always free
        return {"nodes": [wiped]}
    if kind == "power" and whole:
        targets = sorted(free or nodes)
        free.clear()
        return {"nodes": targets}
    if kind in ("crash", "crash-many", "pause", "power"):
        pool = free or list(nodes)
        if kind == "crash-many":
            size = max(1, min(replicas - 1, len(nodes) - 1, len(pool)))
            targets = sorted(rng.sample(pool, size))
        else:
            targets = minority(pool, rng)
        for node in targets:
            if node in free:
                free.remove(node)
        return {"nodes": targets}
    if kind == "packet":
        return {
            "nodes": minority(nodes, rng),
            "delay_ms": round(_log_uniform(rng, 5.0, 500.0), 1),
            "jitter_ms": round(_log_uniform(rng, 1.0, 50.0), 1),
            "loss_percent": round(rng.uniform(0.0, 30.0), 1),
        }
    raise ValueError(f"unknown fault {kind!r}")


def _clock(nodes: Sequence[str], rng: random.Random) -> dict:
    targets = sorted(rng.sample(list(nodes), rng.randint(1, len(nodes))))
    if rng.random() < 0.5:
        # log-uniform magnitudes from 1 ms to 2 minutes, either direction
        offsets = {n: round(rng.choice((-1, 1)) * _log_uniform(rng, 0.001, 120.0), 6)
                   for n in targets}
        return {"kind": "bump", "offsets": offsets}
    return {
        "kind": "strobe",
        "nodes": targets,
        "delta": round(_log_uniform(rng, 0.01, 10.0), 6),
        "period": round(_log_uniform(rng, 0.01, 1.0), 6),
    }


def _stop_value(kind: str, start: dict) -> dict:
    if kind == "partition":
        return {"kind": start["kind"]}
    if kind == "clock":
        targets = sorted(start.get("offsets") or start.get("nodes") or [])
        return {"kind": start["kind"], "nodes": targets}
    return {"nodes": start["nodes"]}


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def action_to_json(action: Action) -> dict[str, Any]:
    """The history's nemesis fields for this action."""
    out: dict[str, Any] = {"f": action.f, "value": action.value}
    if action.fault is not None:
        out["fault"] = action.fault
    return out
