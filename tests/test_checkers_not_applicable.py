"""Checkers whose input is absent answer n/a, and n/a does not weigh in the overall verdict."""

from __future__ import annotations

from typing import Any

import pytest

from checkers.deletes import check_deletes
from checkers.history import Call, from_events, pair
from checkers.perf import check_perf
from checkers.phantoms import check_phantoms
from checkers.read_your_writes import check_read_your_writes
from checkers.registry import CheckInput, run_checkers
from checkers.sets import check_sets
from checkers.verdict import NOT_APPLICABLE


def calls(events: list[tuple[Any, ...]]) -> list[Call]:
    return pair(from_events(events, key="k"))[0]


# a register history: two acknowledged writes, then another process reads
REGISTER = [(0, "invoke", "write", 1), (0, "ok", "write", 1),
            (0, "invoke", "write", 2), (0, "ok", "write", 2),
            (1, "invoke", "read", None), (1, "ok", "read", [2])]


@pytest.mark.parametrize("check", [
    check_phantoms, check_read_your_writes, check_deletes, check_sets, check_perf,
])  # linearizable of no operation is valid, as Knossos has it (test_checkers_knossos_semantics)
def test_no_client_operations_is_not_applicable(check: Any) -> None:
    v = check([])
    assert v.verdict == NOT_APPLICABLE and v.summary


def test_writes_without_reads_leave_phantoms_not_applicable() -> None:
    v = check_phantoms(calls(REGISTER[:4]))
    assert v.verdict == NOT_APPLICABLE and "No read completed" in v.summary


def test_bare_register_history_is_valid_not_unknown() -> None:
    # no replicas.json, no delete, no read after the same process's write: those checkers are
    # n/a; phantoms and perf judged, so the verdict is theirs
    out = run_checkers(CheckInput(calls(REGISTER), test={"workload": "register"}))
    verdicts = {name: c["verdict"] for name, c in out["checkers"].items()}
    assert verdicts["convergence"] == NOT_APPLICABLE
    assert verdicts["deletes"] == NOT_APPLICABLE
    assert verdicts["read-your-writes"] == NOT_APPLICABLE
    assert verdicts["phantoms"] == "valid" and verdicts["perf"] == "valid"
    assert out["verdict"] == "valid"


def test_invalid_with_not_applicable_stays_invalid() -> None:
    phantom = REGISTER[:4] + [(1, "invoke", "read", None), (1, "ok", "read", [9])]
    out = run_checkers(CheckInput(calls(phantom), test={"workload": "register"}))
    assert out["checkers"]["convergence"]["verdict"] == NOT_APPLICABLE
    assert out["verdict"] == "invalid"


def test_only_not_applicable_checkers_is_unknown() -> None:
    out = run_checkers(CheckInput([], test={"workload": "register"}), ["convergence", "deletes"])
    assert {c["verdict"] for c in out["checkers"].values()} == {NOT_APPLICABLE}
    assert out["verdict"] == "unknown"
