"""Lost writes / sibling preservation (set-full style) and the sibling histogram."""

from __future__ import annotations

from checkers.faults import FaultTimeline, fault_intervals
from checkers.history import from_events, pair
from checkers.sets import check_sets

S = 1_000_000_000


def run(events, nemesis_events=()):
    calls, nem = pair(from_events(list(events), key="set-0"))
    nem = [o for o in from_events(list(nemesis_events))]
    return check_sets(calls, FaultTimeline(fault_intervals(nem)))


def test_every_acknowledged_add_in_final_read_is_valid() -> None:
    v = run([(0, "invoke", "add", 1), (0, "ok", "add", 1),
             (1, "invoke", "add", 2), (1, "ok", "add", 2),
             (2, "invoke", "read", None), (2, "ok", "read", [1], {"siblings": 2}),
             (3, "invoke", "read", None, {"final": True}),
             (3, "ok", "read", [1, 2], {"final": True, "siblings": 1})])
    assert v.verdict == "valid", v.summary
    e = v.evidence
    assert e["stable_count"] == 2 and e["lost_count"] == 0
    assert e["stale_count"] == 1 and e["stale_reads"] == 1  # 2 was missing from an early read
    assert e["sibling_histogram"] == {"1": 1, "2": 1}
    assert e["latencies"]["first_seen_ms"]["count"] == 2


def test_acknowledged_add_missing_from_final_read_is_lost_with_faults() -> None:
    nemesis = [("nemesis", "info", "start", {"kind": "isolate"}, {"fault": "partition",
                                                                  "time": 0}),
               ("nemesis", "info", "start", {"kind": "isolate"}, {"fault": "partition",
                                                                  "time": 1}),
               ("nemesis", "info", "stop", None, {"fault": "partition", "time": 10 * S}),
               ("nemesis", "info", "stop", None, {"fault": "partition", "time": 10 * S + 1})]
    v = run([(0, "invoke", "add", 1, {"time": 1 * S}), (0, "ok", "add", 1, {"time": 2 * S}),
             (1, "invoke", "add", 2, {"time": 3 * S}), (1, "ok", "add", 2, {"time": 4 * S}),
             (3, "invoke", "read", None, {"final": True, "time": 20 * S}),
             (3, "ok", "read", [2], {"final": True, "time": 21 * S})], nemesis)
    assert v.verdict == "invalid"
    lost = v.evidence["lost"]
    assert [x["element"] for x in lost] == [1] and v.evidence["lost_count"] == 1
    assert lost[0]["faults"] == ["partition"] and lost[0]["add"]["process"] == 0
    assert v.summary.startswith("Let A be the add of 1") and "during partition" in v.summary


def test_add_never_followed_by_a_read_is_never_read() -> None:
    v = run([(0, "invoke", "add", 1), (0, "ok", "add", 1),
             (3, "invoke", "read", None), (3, "ok", "read", [1]),
             (0, "invoke", "add", 2), (0, "ok", "add", 2)])
    assert v.verdict == "valid"
    assert v.evidence["never_read"] == [2] and v.evidence["final_reads"] == "last"


def test_timed_out_add_may_or_may_not_appear() -> None:
    for final in ([1], [1, 2]):
        v = run([(0, "invoke", "add", 1), (0, "ok", "add", 1),
                 (1, "invoke", "add", 2), (1, "info", "add", 2),
                 (3, "invoke", "read", None, {"final": True}),
                 (3, "ok", "read", final, {"final": True})])
        assert v.verdict == "valid"


def test_read_of_an_element_never_added_or_failed_is_invalid() -> None:
    v = run([(0, "invoke", "add", 1), (0, "ok", "add", 1),
             (3, "invoke", "read", None), (3, "ok", "read", [1, 9])])
    assert v.verdict == "invalid" and "no operation ever added it" in v.summary
    v = run([(0, "invoke", "add", 1), (0, "fail", "add", 1),
             (3, "invoke", "read", None), (3, "ok", "read", [1])])
    assert v.verdict == "invalid" and "failed" in v.summary


def test_no_reads_is_not_applicable() -> None:
    v = run([(0, "invoke", "add", 1), (0, "ok", "add", 1)])
    assert v.verdict == "n/a"
    assert run([(0, "invoke", "add", 1), (0, "fail", "add", 1)]).verdict == "n/a"
