"""Linearizability: the classic traps, every model, info operations, budgets and evidence."""

from __future__ import annotations

from typing import Any

import pytest

from checkers.generate import generate
from checkers.history import from_events, pair
from checkers.linearizability import Budget, check_linearizable
from checkers.models import get_model


def check(events: list[tuple[Any, ...]], model: str = "register", **kw: Any):
    calls, _ = pair(from_events(events, key="k"))
    return check_linearizable(calls, model, **kw)


def test_sequential_history_is_valid() -> None:
    v = check([(0, "invoke", "write", 1), (0, "ok", "write", 1),
               (0, "invoke", "read", None), (0, "ok", "read", 1)])
    assert v.verdict == "valid"
    assert v.evidence["keys"]["k"]["verdict"] == "valid"


def test_stale_read_after_completed_write_is_invalid() -> None:
    v = check([(0, "invoke", "write", 1), (0, "ok", "write", 1),
               (1, "invoke", "write", 2), (1, "ok", "write", 2),
               (0, "invoke", "read", None), (0, "ok", "read", 1)])
    assert v.verdict == "invalid"
    key = v.evidence["keys"]["k"]
    assert [op["value"] for op in key["prefix"]] == [1, 2]
    assert [(op["f"], op["value"]) for op in key["unplaceable"]] == [("read", 1)]
    assert key["unplaceable"][0]["end"] is not None and "time" in key["unplaceable"][0]
    assert v.summary.startswith("Let P be") and "Then" in v.summary
    assert "register holds 2" in key["explanation"]


def test_read_of_a_value_never_written_is_invalid_and_says_so() -> None:
    v = check([(0, "invoke", "write", 1), (0, "ok", "write", 1),
               (1, "invoke", "read", None), (1, "ok", "read", 9)])
    assert v.verdict == "invalid"
    assert "no operation ever wrote 9" in v.summary


def test_concurrent_writes_with_reads_linearizable_in_one_order_only() -> None:
    # w1 and w2 overlap; one read sees 2 then a later read sees 1: only w2 < w1 works
    ok = check([(0, "invoke", "write", 1), (1, "invoke", "write", 2),
                (2, "invoke", "read", None), (2, "ok", "read", 2),
                (0, "ok", "write", 1), (1, "ok", "write", 2),
                (2, "invoke", "read", None), (2, "ok", "read", 1)])
    assert ok.verdict == "valid"
    # ...but if a read has already seen 1 before 2 was seen, then 1 again: no order works
    bad = check([(0, "invoke", "write", 1), (1, "invoke", "write", 2),
                 (2, "invoke", "read", None), (2, "ok", "read", 1),
                 (3, "invoke", "read", None), (3, "ok", "read", 2),
                 (0, "ok", "write", 1), (1, "ok", "write", 2),
                 (2, "invoke", "read", None), (2, "ok", "read", 1)])
    assert bad.verdict == "invalid"


def test_timed_out_write_later_read_is_valid() -> None:
    v = check([(0, "invoke", "write", 1), (0, "info", "write", 1),
               (1, "invoke", "read", None), (1, "ok", "read", None),
               (1, "invoke", "read", None), (1, "ok", "read", 1)])
    assert v.verdict == "valid"


def test_timed_out_write_never_read_is_valid() -> None:
    v = check([(0, "invoke", "write", 1), (0, "ok", "write", 1),
               (2, "invoke", "write", 2), (2, "info", "write", 2),
               (1, "invoke", "read", None), (1, "ok", "read", 1)])
    assert v.verdict == "valid"
    assert v.evidence["keys"]["k"]["pruned_info_ops"] == 1


def test_info_write_cannot_take_effect_before_its_invocation() -> None:
    v = check([(1, "invoke", "read", None), (1, "ok", "read", 1),
               (0, "invoke", "write", 1), (0, "info", "write", 1)])
    assert v.verdict == "invalid"


def test_info_write_read_then_unread_is_invalid() -> None:
    # once the info write is visible, it cannot vanish without another write
    v = check([(0, "invoke", "write", 1), (0, "ok", "write", 1),
               (2, "invoke", "write", 2), (2, "info", "write", 2),
               (1, "invoke", "read", None), (1, "ok", "read", 2),
               (1, "invoke", "read", None), (1, "ok", "read", 1)])
    assert v.verdict == "invalid"


def test_cas_effect_visible_only_through_later_reads() -> None:
    events = [(0, "invoke", "write", 0), (0, "ok", "write", 0),
              (1, "invoke", "cas", [0, 5]), (1, "info", "cas", [0, 5]),
              (2, "invoke", "read", None), (2, "ok", "read", 5)]
    assert check(events, "cas-register").verdict == "valid"
    # the same cas could not have applied if the register never held its old value
    bad = [(0, "invoke", "write", 3), (0, "ok", "write", 3),
           (1, "invoke", "cas", [0, 5]), (1, "info", "cas", [0, 5]),
           (2, "invoke", "read", None), (2, "ok", "read", 5)]
    assert check(bad, "cas-register").verdict == "invalid"


def test_failed_cas_did_not_happen() -> None:
    v = check([(0, "invoke", "write", 0), (0, "ok", "write", 0),
               (1, "invoke", "cas", [0, 5]), (1, "fail", "cas", [0, 5]),
               (2, "invoke", "read", None), (2, "ok", "read", 5)], "cas-register")
    assert v.verdict == "invalid"


def test_register_read_with_two_siblings_is_not_a_register() -> None:
    events = [(0, "invoke", "write", 1), (1, "invoke", "write", 2),
              (0, "ok", "write", 1), (1, "ok", "write", 2),
              (2, "invoke", "read", None), (2, "ok", "read", [1, 2])]
    v = check(events, "register")
    assert v.verdict == "invalid" and "several siblings" in v.summary
    assert check(events, "siblings-register").verdict == "valid"


def test_siblings_register_rejects_resurrection_and_stale_reads() -> None:
    base = [(0, "invoke", "write", 1), (1, "invoke", "write", 2),
            (0, "ok", "write", 1), (1, "ok", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", [2])]
    resurrect = base + [(2, "invoke", "read", None), (2, "ok", "read", [1, 2])]
    assert check(resurrect, "siblings-register").verdict == "invalid"
    stale = [(0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 2), (1, "ok", "write", 2),
             (2, "invoke", "read", None), (2, "ok", "read", [1])]
    assert check(stale, "siblings-register").verdict == "invalid"


def test_siblings_register_read_that_retires_values_is_not_forced_early() -> None:
    # live values {1, 2} under newest 3: the read seeing [3, 1, 2] must go before [3, 1]
    events = [(0, "invoke", "write", 1), (1, "invoke", "write", 2), (2, "invoke", "write", 3),
              (0, "ok", "write", 1), (1, "ok", "write", 2), (2, "ok", "write", 3),
              (3, "invoke", "read", None), (4, "invoke", "read", None),
              (3, "ok", "read", [3, 1]), (4, "ok", "read", [3, 1, 2])]
    assert check(events, "siblings-register").verdict == "valid"


def test_kv_append_and_set_models() -> None:
    kv = [(0, "invoke", "put", [1]), (0, "ok", "put", [1]),
          (1, "invoke", "append", 2), (2, "invoke", "append", 3),
          (1, "ok", "append", 2), (2, "ok", "append", 3),
          (0, "invoke", "get", None), (0, "ok", "get", [1, 3, 2])]
    assert check(kv, "kv").verdict == "valid"
    kv_bad = kv[:-1] + [(0, "ok", "get", [1, 2])]
    assert check(kv_bad, "kv").verdict == "invalid"
    s = [(0, "invoke", "add", 1), (0, "ok", "add", 1),
         (1, "invoke", "read", None), (1, "ok", "read", [1])]
    assert check(s, "set").verdict == "valid"
    lost = s + [(1, "invoke", "read", None), (1, "ok", "read", [])]
    assert check(lost, "set").verdict == "invalid"


def test_keys_are_checked_independently() -> None:
    ops = from_events([(0, "invoke", "write", 1, {"key": "a"}), (0, "ok", "write", 1, {"key": "a"}),
                       (1, "invoke", "read", None, {"key": "b"}),
                       (1, "ok", "read", 1, {"key": "b"})])
    v = check_linearizable(pair(ops)[0], "register")
    assert v.verdict == "invalid"
    assert v.evidence["keys"]["a"]["verdict"] == "valid"
    assert v.evidence["keys"]["b"]["verdict"] == "invalid"
    assert v.evidence["invalid_keys"] == ["b"]


def test_unknown_operation_for_a_model_is_unknown_with_reason() -> None:
    v = check([(0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2])], "register")
    assert v.verdict == "unknown" and "no operation 'cas'" in v.evidence["reason"]
    with pytest.raises(ValueError, match="unknown model"):
        get_model("queue")


def test_budget_exhaustion_answers_unknown_with_reason() -> None:
    ops = generate("cas-register", 1000, 40, info_rate=0.05, seed=1)
    v = check_linearizable(pair(ops)[0], "cas-register", Budget(seconds=0.05))
    assert v.verdict == "unknown"
    assert "time budget" in v.evidence["reason"]
    v = check_linearizable(pair(ops)[0], "cas-register", Budget(memory_bytes=1))
    assert v.verdict == "unknown" and "memory budget" in v.evidence["reason"]


def test_generated_histories_of_every_model_are_valid() -> None:
    for model in ("register", "cas-register", "set", "siblings-register", "kv"):
        ops = generate(model, 400, 5, keys=3, info_rate=0.05, seed=7)
        v = check_linearizable(pair(ops)[0], model)
        assert v.verdict == "valid", (model, v.summary)
