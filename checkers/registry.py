"""Checker names, the default checkers per workload, and running a selection of them.

`CheckInput` carries everything a checker may need besides the history itself: the test settings
(`test.json`), the replicas' final state (`replicas.json`), the model, the search budget and the
linearizability semantics (initial value, nil reads, failed cas).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.convergence import check_convergence
from checkers.deletes import check_deletes
from checkers.faults import FaultTimeline, fault_intervals
from checkers.handoff import check_handoff
from checkers.history import Call, Op
from checkers.linearizability import Budget, Semantics, check_linearizable
from checkers.models import MODELS
from checkers.perf import check_perf
from checkers.phantoms import check_phantoms
from checkers.preservation import check_preservation
from checkers.read_your_writes import Quorum, check_read_your_writes
from checkers.replication import check_replication
from checkers.sets import check_sets
from checkers.verdict import UNKNOWN, Verdict, combine


@dataclass
class CheckInput:
    calls: list[Call]
    nemesis: list[Op] = field(default_factory=list)
    test: dict[str, Any] = field(default_factory=dict)
    replicas: dict[str, Any] | None = None
    model: str | None = None
    budget: Budget = field(default_factory=Budget)
    semantics: Semantics = field(default_factory=Semantics)
    notes: dict[str, Any] = field(default_factory=dict)  # how the input was read, for output

    @property
    def workload(self) -> str:
        w = test_settings(self.test).get("workload")
        return w if isinstance(w, str) and w else infer_workload(self.calls)

    @property
    def timeline(self) -> FaultTimeline:
        return FaultTimeline(fault_intervals(self.nemesis))

    @property
    def quorum(self) -> Quorum:
        return quorum_from_test(self.test)


def test_settings(test: dict[str, Any]) -> dict[str, Any]:
    """test.json's settings: the runner nests them under "settings"; top-level keys win."""
    nested = test.get("settings")
    merged = dict(nested) if isinstance(nested, dict) else {}
    merged.update({k: v for k, v in test.items() if k != "settings"})
    return merged


def quorum_from_test(test: dict[str, Any]) -> Quorum:
    """N, R, W and sloppy from test.json (top level, under "cluster", or under "settings" and
    its "cluster"); the node's defaults for whatever is missing."""
    flat = test_settings(test)
    merged: dict[str, Any] = {}
    cluster = flat.get("cluster")
    if isinstance(cluster, dict):
        merged.update(cluster)
    merged.update({k: v for k, v in flat.items() if k in ("n", "r", "w", "sloppy",
                                                           "sloppy_quorum")})
    d = Quorum()

    def num(name: str, default: int) -> int:
        v = merged.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default

    sloppy = merged.get("sloppy", merged.get("sloppy_quorum", d.sloppy))
    return Quorum(num("n", d.n), num("r", d.r), num("w", d.w), bool(sloppy))


def infer_workload(calls: Sequence[Call]) -> str:
    """The workload a bare history looks like: set (adds), register (writes), else generic."""
    fs = {c.f for c in calls}
    if "add" in fs:
        return "set"
    if "write" in fs and fs <= {"write", "read", "delete"}:
        return "register"
    return "generic"


def default_model(workload: str, calls: Sequence[Call]) -> str:
    """The linearizability model a workload's history is checked against by default."""
    if workload in ("cart", "set"):
        return "set"
    if workload == "register":
        return "siblings-register"
    if workload == "cas-register":
        return "cas-register"
    fs = {c.f for c in calls}
    if "cas" in fs:
        return "cas-register"
    if fs & {"append", "get", "put"}:
        return "kv"
    if "add" in fs:
        return "set"
    return "register"


def _linearizable(inp: CheckInput) -> Verdict:
    model = inp.model or default_model(inp.workload, inp.calls)
    return check_linearizable(inp.calls, model, inp.budget, inp.semantics)


def _sets(inp: CheckInput) -> Verdict:
    """Lost writes: every acknowledged add must be in the final reads (cart, set)."""
    return check_sets(inp.calls, inp.timeline)


def _ryw(inp: CheckInput) -> Verdict:
    """Read-your-writes: a process's read descends from its own acknowledged write."""
    return check_read_your_writes(inp.calls, inp.quorum, reap_after_ns(inp.test))


def reap_after_ns(test: dict[str, Any]) -> int:
    """How long a tombstone surely outlives its delete: the node's `tombstone_grace_ms` (60 s by
    default); 0 under the clock nemesis, which moves node clocks forward."""
    flat = test_settings(test)
    nemesis = flat.get("nemesis")
    if nemesis == "clock" or (isinstance(nemesis, list) and "clock" in nemesis):
        return 0
    cluster = flat.get("cluster")
    node = cluster.get("node_settings") if isinstance(cluster, dict) else None
    grace = node.get("tombstone_grace_ms", 60_000) if isinstance(node, dict) else 60_000
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
        return 0
    return grace * 1_000_000


def _convergence(inp: CheckInput) -> Verdict:
    """Convergence: every replica of every key holds the same versions after the heal."""
    return check_convergence(inp.replicas)


def _replication(inp: CheckInput) -> Verdict:
    """Replication: every key that holds a value is on N distinct nodes after the heal."""
    return check_replication(inp.replicas, stated_n(inp.test))


def _handoff(inp: CheckInput) -> Verdict:
    """Hinted handoff: no node still holds hints after the heal and a bounded wait."""
    return check_handoff(inp.replicas, node_setting(inp.test, "handoff_interval_ms"))


def node_setting(test: dict[str, Any], name: str) -> int | None:
    """A positive integer node setting the test gave the store (`--node-setting`), or None."""
    cluster = test_settings(test).get("cluster")
    node = cluster.get("node_settings") if isinstance(cluster, dict) else None
    value = node.get(name) if isinstance(node, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def stated_n(test: dict[str, Any]) -> int | None:
    """N as test.json states it (top level or under "cluster"), or None."""
    flat = test_settings(test)
    cluster = flat.get("cluster")
    n = flat.get("n", cluster.get("n") if isinstance(cluster, dict) else None)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _phantoms(inp: CheckInput) -> Verdict:
    """Phantom reads: every value read was written, by a write not known to have failed."""
    return check_phantoms(inp.calls)


def _preservation(inp: CheckInput) -> Verdict:
    """Sibling preservation: no acknowledged write lost, judged from recorded reads (register).

    Lost: in no final read, and no write or delete that may have happened read it."""
    return check_preservation(inp.calls)


def _deletes(inp: CheckInput) -> Verdict:
    """Resurrection: no value an acknowledged delete removed is in a final read (register)."""
    return check_deletes(inp.calls)


def _perf(inp: CheckInput) -> Verdict:
    """Latency quantiles, throughput, and availability while each fault was active."""
    return check_perf(inp.calls, inp.timeline)


_linearizable.__doc__ = ("Linearizability per key against a model (register, cas-register, kv, "
                         "set, siblings-register); not a default: Dynamo does not promise it.")

CHECKERS: dict[str, Callable[[CheckInput], Verdict]] = {
    "linearizable": _linearizable,
    "set": _sets,
    "read-your-writes": _ryw,
    "convergence": _convergence,
    "replication": _replication,
    "handoff": _handoff,
    "phantoms": _phantoms,
    "deletes": _deletes,
    "sibling-preservation": _preservation,
    "perf": _perf,
}
ALIASES = {
    "linearizability": "linearizable", "lost-writes": "set", "sets": "set",
    "ryw": "read-your-writes", "performance": "perf",
    "phantom-reads": "phantoms", "resurrection": "deletes", "hints": "handoff",
}
# Linearizability is not promised by a Dynamo store, so it is asked for, not a default. The set
# workload only adds (then one final read by a fresh process), so read-your-writes has nothing to
# judge there.
DEFAULTS: dict[str, list[str]] = {
    "cart": ["set", "read-your-writes", "convergence", "replication", "handoff", "perf"],
    "set": ["set", "convergence", "replication", "handoff", "perf"],
    "register": ["phantoms", "read-your-writes", "deletes", "sibling-preservation",
                 "convergence", "replication", "handoff", "perf"],
    "cas-register": ["linearizable", "perf"],  # Jepsen's etcd test: linearizable is promised
    "generic": ["linearizable", "perf"],
}


def resolve(names: Sequence[str] | None, workload: str) -> list[str]:
    """Checker names (aliases allowed) or the workload's defaults; unknown names raise."""
    if not names:
        return list(DEFAULTS.get(workload, DEFAULTS["generic"]))
    out = []
    for n in names:
        canon = ALIASES.get(n, n)
        if canon not in CHECKERS:
            raise ValueError(f"unknown checker {n!r}; choose from {', '.join(CHECKERS)}")
        if canon not in out:
            out.append(canon)
    return out


def run_checkers(inp: CheckInput, names: Sequence[str] | None = None) -> dict[str, Any]:
    """{"verdict", "checkers": {name: {"verdict", "summary", "evidence", "duration_s"}}}."""
    if inp.model is not None and inp.model not in MODELS:
        raise ValueError(f"unknown model {inp.model!r}; choose from {', '.join(MODELS)}")
    chosen = resolve(names, inp.workload)
    results: dict[str, Any] = {}
    for name in chosen:
        started = time.monotonic()
        try:
            v = CHECKERS[name](inp)
        except Exception as e:  # one broken checker must not hide the others' verdicts
            v = Verdict(UNKNOWN, f"The {name} checker failed: {type(e).__name__}: {e}.",
                        {"error": f"{type(e).__name__}: {e}"})
        d = v.to_dict()
        d["duration_s"] = round(time.monotonic() - started, 4)
        results[name] = d
    return {"verdict": combine(r["verdict"] for r in results.values()), "checkers": results}
