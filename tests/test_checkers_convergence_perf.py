"""Convergence of replicas, performance and availability, faults, registry and verdicts."""

from __future__ import annotations

import pytest

from checkers.convergence import check_convergence
from checkers.faults import FaultTimeline, fault_intervals
from checkers.history import from_events, pair
from checkers.perf import check_perf
from checkers.registry import CheckInput, quorum_from_test, resolve, run_checkers
from checkers.verdict import Verdict, combine

S = 1_000_000_000


def rep(*ids: str) -> dict:
    return {"ok": True, "clock": {}, "versions": [{"id": i, "value": 1, "tombstone": False}
                                                  for i in ids]}


def test_converged_replicas_are_valid_with_time() -> None:
    r = {"heal_time": 10 * S, "converged_time": 10 * S + 250_000_000, "keys": {
        "k": {"preference_list": ["n1", "n2"], "replicas": {"n1": rep("a:1"), "n2": rep("a:1"),
                                                            "n9": rep()}}}}
    v = check_convergence(r)
    assert v.verdict == "valid" and v.evidence["converged_after_ms"] == 250.0
    assert v.evidence["keys_checked"] == 1


def test_divergent_replicas_are_invalid() -> None:
    r = {"heal_time": None, "converged_time": None, "keys": {
        "k": {"preference_list": ["n1", "n2"], "replicas": {"n1": rep("a:1"),
                                                            "n2": rep("a:1", "b:1")}}}}
    v = check_convergence(r)
    assert v.verdict == "invalid"
    assert v.evidence["divergent"] == {"k": {"n1": ["a:1"], "n2": ["a:1", "b:1"]}}
    assert v.summary.startswith("Let K be key 'k'")


def test_unreachable_replica_is_unknown_and_missing_file_not_applicable() -> None:
    r = {"keys": {"k": {"preference_list": ["n1", "n2"],
                        "replicas": {"n1": rep("a:1"), "n2": {"ok": False, "error": "down"}}}}}
    assert check_convergence(r).verdict == "unknown"
    missing = check_convergence(None)
    assert missing.verdict == "n/a" and "no replicas.json" in missing.summary
    assert check_convergence({"keys": {}}).verdict == "n/a"


def test_perf_latency_throughput_and_availability_per_fault() -> None:
    nem = from_events([
        ("nemesis", "info", "start", None, {"fault": "partition", "time": 2 * S}),
        ("nemesis", "info", "start", None, {"fault": "partition", "time": 2 * S + 5}),
        ("nemesis", "info", "heal", None, {"time": 4 * S}),
        ("nemesis", "info", "heal", None, {"time": 4 * S + 5})])
    faults = fault_intervals(nem)
    assert [(f.name, f.start, f.end) for f in faults] == [("partition", 2 * S, 4 * S + 5)]
    calls, _ = pair(from_events([
        (0, "invoke", "read", None, {"time": 0}), (0, "ok", "read", [], {"time": 10_000_000}),
        (0, "invoke", "write", 1, {"time": 3 * S}), (0, "info", "write", 1, {"time": 3 * S + 1}),
        (1, "invoke", "write", 2, {"time": 3 * S}), (1, "ok", "write", 2, {"time": 3 * S + 2}),
        (1, "invoke", "read", None, {"time": 5 * S}), (1, "fail", "read", None,
                                                       {"time": 5 * S + 20_000_000}),
    ], key="k"))
    v = check_perf(calls, FaultTimeline(faults))
    assert v.verdict == "valid"
    e = v.evidence
    assert e["latency"]["read"]["ok"]["p50"] == 10.0 and e["latency"]["read"]["fail"]["max"] == 20.0
    assert e["availability"] == {"healthy": 0.5, "partition": 0.5}
    assert e["throughput"] == [[0, 1], [1, 0], [2, 0], [3, 2], [4, 0], [5, 1]]
    assert check_perf([]).verdict == "n/a"


def test_registry_defaults_and_quorum_from_test() -> None:
    assert resolve(None, "register") == ["phantoms", "read-your-writes", "deletes",
                                         "sibling-preservation", "convergence", "replication",
                                         "handoff", "perf"]
    assert "linearizable" not in resolve(None, "register")
    assert resolve(None, "cart")[0] == "set"
    assert resolve(["linearizability", "ryw"], "set") == ["linearizable", "read-your-writes"]
    with pytest.raises(ValueError, match="unknown checker"):
        resolve(["nope"], "set")
    q = quorum_from_test({"cluster": {"n": 5, "r": 3, "w": 3, "sloppy": False}})
    assert (q.n, q.r, q.w, q.strict) == (5, 3, 3, True)
    assert quorum_from_test({"n": 3, "r": 1, "w": 1}).sloppy  # node default
    # the runner's test.json nests everything under "settings"
    runner_shape = {"name": "cart-partition", "settings": {
        "workload": "cart", "cluster": {"n": 3, "r": 2, "w": 2, "sloppy": False}}}
    assert quorum_from_test(runner_shape).strict
    assert CheckInput([], test=runner_shape).workload == "cart"


def test_run_checkers_combines_verdicts() -> None:
    calls, _ = pair(from_events([(0, "invoke", "write", 1), (0, "ok", "write", 1),
                                 (0, "invoke", "read", None), (0, "ok", "read", [5])], key="k"))
    out = run_checkers(CheckInput(calls, test={"workload": "register"}),
                       ["linearizable", "perf"])
    assert out["verdict"] == "invalid"
    assert out["checkers"]["linearizable"]["verdict"] == "invalid"
    assert out["checkers"]["perf"]["verdict"] == "valid"
    assert "duration_s" in out["checkers"]["perf"]


def test_combine_rule() -> None:
    assert combine(["valid", "unknown", "invalid"]) == "invalid"
    assert combine(["valid", "unknown"]) == "unknown"
    assert combine(["valid"]) == "valid"
    assert combine([]) == "unknown"
    assert combine(["valid", "n/a"]) == "valid"
    assert combine(["invalid", "n/a"]) == "invalid"
    assert combine(["n/a", "n/a"]) == "unknown"  # nothing was judged
    with pytest.raises(ValueError):
        Verdict("maybe", "")


def test_phantom_reads() -> None:
    from checkers.phantoms import check_phantoms

    def run(events):
        return check_phantoms(pair(from_events(events, key="r1"))[0])

    ok = run([(0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", [1]),
              (0, "info", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", [])])
    assert ok.verdict == "valid" and ok.evidence["reads_checked"] == 2
    ghost = run([(1, "invoke", "read", None), (1, "ok", "read", [7])])
    assert ghost.verdict == "invalid" and "no operation ever wrote it" in ghost.summary
    failed = run([(0, "invoke", "write", 1), (0, "fail", "write", 1),
                  (1, "invoke", "read", None), (1, "ok", "read", [1])])
    assert failed.verdict == "invalid" and "failed" in failed.evidence["phantoms"][0]["why"]
    future = run([(1, "invoke", "read", None), (1, "ok", "read", [1]),
                  (0, "invoke", "write", 1), (0, "ok", "write", 1)])
    assert future.verdict == "invalid" and "after the read" in future.summary
