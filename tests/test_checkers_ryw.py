"""Read-your-writes by clocks and by value, strict versus sloppy quorums."""

from __future__ import annotations

from checkers.history import from_events, pair
from checkers.read_your_writes import Quorum, check_read_your_writes

STRICT = Quorum(n=3, r=2, w=2, sloppy=False)
SLOPPY = Quorum(n=3, r=2, w=2, sloppy=True)


def run(events, quorum):
    return check_read_your_writes(pair(from_events(events, key="r1"))[0], quorum)


def test_read_descending_from_own_write_by_clock_is_valid() -> None:
    v = run([(0, "invoke", "write", 1), (0, "ok", "write", 1, {"clock": {"a": 1}}),
             (0, "invoke", "read", None), (0, "ok", "read", [1], {"clock": {"a": 2, "b": 1}})],
            STRICT)
    assert v.verdict == "valid" and v.evidence["by_clock"] == 1


def test_read_behind_own_write_is_invalid_under_strict_quorums() -> None:
    events = [(0, "invoke", "write", 1), (0, "ok", "write", 1, {"clock": {"a": 2}}),
              (1, "invoke", "read", None), (1, "ok", "read", [], {"clock": {}}),
              (0, "invoke", "read", None), (0, "ok", "read", [7], {"clock": {"a": 1, "b": 5}})]
    v = run(events, STRICT)
    assert v.verdict == "invalid" and v.evidence["count"] == 1 and v.evidence["strict"]
    viol = v.evidence["violations"][0]
    assert viol["write"]["value"] == 1 and viol["read"]["process"] == 0
    assert "a: 1 < 2" in viol["explanation"] and v.summary.startswith("Let W be")
    sloppy = run(events, SLOPPY)
    assert sloppy.verdict == "valid" and sloppy.evidence["count"] == 1
    assert "allow" in sloppy.summary


def test_by_value_without_clocks() -> None:
    ok = run([(0, "invoke", "write", 1), (0, "ok", "write", 1),
              (1, "invoke", "write", 2), (1, "ok", "write", 2),
              (0, "invoke", "read", None), (0, "ok", "read", [2])], STRICT)
    assert ok.verdict == "valid"  # 2 was written after 1 was invoked: it may supersede it
    bad = run([(1, "invoke", "write", 2), (1, "ok", "write", 2),
               (0, "invoke", "write", 1), (0, "ok", "write", 1),
               (0, "invoke", "read", None), (0, "ok", "read", [2])], STRICT)
    assert bad.verdict == "invalid" and bad.evidence["violations"][0]["by"] == "value"


def test_adds_by_value() -> None:
    v = run([(0, "invoke", "add", "x"), (0, "ok", "add", "x"),
             (0, "invoke", "add", "y"), (0, "ok", "add", "y"),
             (0, "invoke", "read", None), (0, "ok", "read", ["x"])], STRICT)
    assert v.verdict == "invalid" and v.evidence["violations"][0]["missing"] == ["y"]


def test_reads_by_other_processes_are_not_judged() -> None:
    v = run([(0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "read", None), (1, "ok", "read", [])], STRICT)
    assert v.verdict == "n/a" and v.evidence["checked_reads"] == 0


def test_quorum_strictness() -> None:
    assert STRICT.strict and not SLOPPY.strict
    assert not Quorum(n=3, r=1, w=2, sloppy=False).strict
