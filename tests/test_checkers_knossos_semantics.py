"""Histories written for Knossos, Porcupine or Jepsen: initial value, reads of nil, failed cas,
jepsen.independent, the empty history, and the siblings register's delete (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from checkers.history import HistoryError, from_events, looks_independent, pair, split_independent
from checkers.linearizability import Semantics, check_linearizable
from checkers.registry import CheckInput, run_checkers


def check(events: list[tuple[Any, ...]], model: str, **sem: Any) -> str:
    calls, _ = pair(from_events(events, key="k"))
    return check_linearizable(calls, model, semantics=Semantics(**sem)).verdict


# ------------------------------------------------------------------ initial value

def test_cas_register_starting_at_zero_as_knossos_tests_do() -> None:
    h = [(0, "invoke", "cas", [0, 1]), (0, "ok", "cas", [0, 1]),
         (1, "invoke", "read", None), (1, "ok", "read", 1)]
    assert check(h, "cas-register") == "invalid"  # absent is not 0
    assert check(h, "cas-register", initial=0) == "valid"
    assert check(h, "cas-register", initial=2) == "invalid"


def test_kv_key_never_written_reads_empty_string_as_porcupine() -> None:
    h = [(0, "invoke", "get", None), (0, "ok", "get", ""),
         (1, "invoke", "append", "x"), (1, "ok", "append", "x"),
         (0, "invoke", "get", None), (0, "ok", "get", "x")]
    assert check(h, "kv") == "invalid"
    assert check(h, "kv", initial="") == "valid"


def test_initial_value_per_key_and_for_the_other_models() -> None:
    ops = from_events([(0, "invoke", "read", None, {"key": "a"}),
                       (0, "ok", "read", 7, {"key": "a"}),
                       (1, "invoke", "read", None, {"key": "b"}),
                       (1, "ok", "read", 7, {"key": "b"})])
    v = check_linearizable(pair(ops)[0], "register", semantics=Semantics(initial=7))
    assert v.verdict == "valid" and v.evidence["semantics"]["initial"] == 7
    assert check([(0, "invoke", "read", None), (0, "ok", "read", [7])],
                 "siblings-register", initial=7) == "valid"
    assert check([(0, "invoke", "read", None), (0, "ok", "read", [])],
                 "siblings-register", initial=7) == "invalid"
    assert check([(0, "invoke", "read", None), (0, "ok", "read", [1, 2])],
                 "set", initial=[2, 1]) == "valid"
    # a value the model cannot start from is a clear unknown, not a crash
    v = check_linearizable(pair(from_events([(0, "invoke", "read", None),
                                             (0, "ok", "read", [])]))[0],
                           "set", semantics=Semantics(initial=3))
    assert v.verdict == "unknown" and "initial value must be a list" in v.summary


# ------------------------------------------------------------------ reads of nil

NIL_READ = [(0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "read", None), (1, "ok", "read", None)]


def test_read_of_nil_is_unknown_for_knossos_and_absent_for_us() -> None:
    assert check(NIL_READ, "register", nil_reads="absent") == "invalid"
    assert check(NIL_READ, "register", nil_reads="unknown") == "valid"
    assert check(NIL_READ, "cas-register", nil_reads="unknown") == "valid"
    # an unknown read still lets the other reads be judged
    stale = NIL_READ + [(0, "invoke", "write", 2), (0, "ok", "write", 2),
                        (1, "invoke", "read", None), (1, "ok", "read", 1)]
    assert check(stale, "register", nil_reads="unknown") == "invalid"


# ------------------------------------------------------------------ failed cas

def test_failed_cas_that_should_have_applied_only_observe_rejects() -> None:
    # nothing else runs while the cas fails and the register holds 0: a store that refused it
    h = [(0, "invoke", "write", 0), (0, "ok", "write", 0),
         (1, "invoke", "cas", [0, 1]), (1, "fail", "cas", [0, 1]),
         (0, "invoke", "read", None), (0, "ok", "read", 0)]
    assert check(h, "cas-register") == "valid"  # Knossos drops the failed cas
    v = pair(from_events(h, key="k"))[0]
    out = check_linearizable(v, "cas-register", semantics=Semantics(failed_cas="observe"))
    assert out.verdict == "invalid"
    assert "failed cas 0 -> 1 must have seen a value other than 0" in out.summary


def test_failed_cas_observed_during_a_concurrent_write_is_valid() -> None:
    # write 2 overlaps the cas: it may have seen 2; the write nobody reads still counts
    h = [(0, "invoke", "write", 0), (0, "ok", "write", 0),
         (2, "invoke", "write", 2), (1, "invoke", "cas", [0, 1]), (1, "fail", "cas", [0, 1]),
         (2, "ok", "write", 2), (0, "invoke", "write", 0), (0, "ok", "write", 0)]
    assert check(h, "cas-register", failed_cas="observe") == "valid"
    info = [(0, "invoke", "write", 0), (0, "ok", "write", 0),
            (2, "invoke", "write", 2), (2, "info", "write", 2),
            (1, "invoke", "cas", [0, 1]), (1, "fail", "cas", [0, 1])]
    assert check(info, "cas-register", failed_cas="observe") == "valid"


def test_semantics_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="nil_reads"):
        Semantics(nil_reads="maybe")
    with pytest.raises(ValueError, match="failed_cas"):
        Semantics(failed_cas="count")


# ------------------------------------------------------------------ empty history

def test_empty_history_is_trivially_linearizable() -> None:
    for model in ("register", "cas-register", "kv", "set", "siblings-register"):
        v = check_linearizable([], model)
        assert v.verdict == "valid" and "trivially linearizable" in v.summary
    # only nemesis records: still no client operation
    ops = from_events([("nemesis", "info", "start", None), ("nemesis", "info", "start", None)])
    assert check_linearizable(pair(ops)[0], "register").verdict == "valid"


# ------------------------------------------------------------------ jepsen.independent

INDEPENDENT = [(0, "invoke", "write", [3, 5]), (0, "ok", "write", [3, 5]),
               (1, "invoke", "read", [3, None]), (1, "ok", "read", [3, 5]),
               (1, "invoke", "read", [4, None]), (1, "ok", "read", [4, None]),
               (2, "invoke", "write", [4, 1]), (2, "info", "write", None)]


def test_independent_history_splits_into_keys() -> None:
    ops = from_events(INDEPENDENT)
    assert looks_independent(ops)
    split = split_independent(ops)
    assert [(o.key, o.value) for o in split[:4]] == [("3", 5), ("3", 5), ("3", None), ("3", 5)]
    calls = pair(split)[0]
    assert calls[-1].key == "4" and calls[-1].complete is not None  # info without a value
    v = check_linearizable(calls, "register")
    assert v.verdict == "valid" and set(v.evidence["keys"]) == {"3", "4"}
    # read as plain values the same history is wrong: [3, 5] read as a list
    assert check_linearizable(pair(ops)[0], "register").verdict == "invalid"


def test_not_independent_when_a_value_is_not_a_pair_or_a_key_is_given() -> None:
    plain = [(0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "read", None), (1, "ok", "read", 1)]
    assert not looks_independent(from_events(plain))
    assert not looks_independent(from_events(INDEPENDENT, key="x"))
    assert not looks_independent([])
    with pytest.raises(HistoryError, match=r"\[key value\] pair"):
        split_independent(from_events(plain))


# ------------------------------------------------------------------ siblings-register delete

def w(p: int, v: Any) -> list[tuple[Any, ...]]:
    return [(p, "invoke", "write", v), (p, "ok", "write", v)]


def r(p: int, res: list[Any]) -> list[tuple[Any, ...]]:
    return [(p, "invoke", "read", None), (p, "ok", "read", res)]


def d(p: int, removed: list[Any]) -> list[tuple[Any, ...]]:
    return [(p, "invoke", "delete", None), (p, "ok", "delete", removed)]


def test_sequential_register_history_with_deletes() -> None:
    good = w(0, 1) + r(0, [1]) + d(0, [1]) + r(1, []) + w(1, 2) + r(0, [2]) + d(1, [2]) \
        + r(0, [])
    assert check(good, "siblings-register") == "valid"
    assert check(w(0, 1) + d(0, [1]) + r(1, [1]), "siblings-register") == "invalid"  # resurrected
    assert check(w(0, 1) + r(1, []), "siblings-register") == "invalid"  # lost without a delete
    # the register workload's defaults: linearizable is judged now, not unknown
    calls = pair(from_events(good, key="k"))[0]
    out = run_checkers(CheckInput(calls, test={"workload": "register"}), ["linearizable"])
    assert out["checkers"]["linearizable"]["verdict"] == "valid"
    assert out["checkers"]["linearizable"]["evidence"]["model"] == "siblings-register"


def test_delete_removes_only_the_siblings_it_names() -> None:
    # two concurrent writes, both live; a delete that read only [1] leaves 2
    both = [(0, "invoke", "write", 1), (1, "invoke", "write", 2),
            (0, "ok", "write", 1), (1, "ok", "write", 2)] + r(2, [1, 2]) + d(2, [1])
    assert check(both + r(3, [2]), "siblings-register") == "valid"
    assert check(both + r(3, []), "siblings-register") == "valid"  # 2 was the older sibling
    assert check(both + r(3, [1, 2]), "siblings-register") == "invalid"
    assert check(both + r(3, [1]), "siblings-register") == "invalid"
    # a delete of a value the newest write superseded leaves the newest
    assert check(w(0, 1) + w(0, 2) + d(1, [1]) + r(1, []), "siblings-register") == "invalid"


def test_info_delete_removes_what_it_read_or_may_remove_anything() -> None:
    base = w(0, 1) + w(0, 2)
    info_read = [(1, "invoke", "delete", None), (1, "info", "delete", None, {"read": [2]})]
    assert check(base + info_read + r(2, []), "siblings-register") == "valid"
    assert check(base + r(2, []), "siblings-register") == "invalid"
    info_read_1 = [(1, "invoke", "delete", None), (1, "info", "delete", None, {"read": [1]})]
    assert check(base + info_read_1 + r(2, []), "siblings-register") == "invalid"
    unknown = [(1, "invoke", "delete", None), (1, "info", "delete", None)]
    assert check(base + unknown + r(2, []), "siblings-register") == "valid"
    # a delete that failed did nothing
    failed = [(1, "invoke", "delete", None), (1, "fail", "delete", None, {"read": [2]})]
    assert check(base + failed + r(2, []), "siblings-register") == "invalid"
