"""Resurrected values: a value an acknowledged delete removed, or an acknowledged write replaced,
must not be in a final read."""

from __future__ import annotations

from checkers.deletes import check_deletes
from checkers.history import from_events, pair
from checkers.read_your_writes import Quorum, check_read_your_writes
from checkers.registry import CHECKERS, DEFAULTS, infer_workload, reap_after_ns, resolve

FINAL = {"final": True}


def run(events):
    return check_deletes(pair(from_events(events, key="r1"))[0])


def write(p, v):
    return [(p, "invoke", "write", v), (p, "ok", "write", v)]


def delete(p, values, typ="ok"):
    return [(p, "invoke", "delete", None), (p, typ, "delete", values if typ == "ok" else None)]


def final_read(p, values):
    return [(p, "invoke", "read", None, FINAL), (p, "ok", "read", values, FINAL)]


def test_deleted_value_absent_from_final_reads_is_valid() -> None:
    v = run(write(0, 1) + delete(1, [1]) + write(0, 2) + final_read(9, [2]))
    assert v.verdict == "valid" and v.evidence["deletes_checked"] == 1
    assert v.evidence["count"] == 0


def test_resurrected_value_is_invalid_with_evidence() -> None:
    v = run(write(0, 1) + write(2, 5) + delete(1, [1, 5]) + write(0, 2)
            + final_read(9, [1, 2]) + final_read(10, [2, 5]))
    assert v.verdict == "invalid" and v.evidence["count"] == 2
    got = {(e["value"], e["read"]["process"]) for e in v.evidence["resurrected"]}
    assert got == {(1, 9), (5, 10)}
    e = v.evidence["resurrected"][0]
    assert e["key"] == "r1" and e["delete"]["f"] == "delete" and e["delete"]["process"] == 1
    assert v.summary.startswith("Let D be the delete of key 'r1'")
    assert "still returns" in v.summary


def test_non_final_read_of_deleted_value_is_not_flagged() -> None:
    # a stale read while replicas disagree is expected; only reads after heal+quiesce count
    v = run(write(0, 1) + delete(1, [1]) + [(2, "invoke", "read", None), (2, "ok", "read", [1])]
            + final_read(9, []))
    assert v.verdict == "valid"


def test_concurrent_rewrite_is_a_different_value_and_not_flagged() -> None:
    # process 0 writes 2 while process 1's delete (which read only 1) is in flight
    events = (write(0, 1) + [(1, "invoke", "delete", None), (0, "invoke", "write", 2),
                             (1, "ok", "delete", [1]), (0, "ok", "write", 2)]
              + final_read(9, [2]))
    v = run(events)
    assert v.verdict == "valid" and v.evidence["deletes_checked"] == 1


def test_failed_and_unknown_deletes_remove_nothing() -> None:
    v = run(write(0, 1) + delete(1, None, "fail") + delete(2, None, "info") + final_read(9, [1]))
    assert v.verdict == "n/a" and "No delete, and no write based on a read" in v.summary


def test_no_final_reads_is_not_applicable() -> None:
    v = run(write(0, 1) + delete(1, [1]) + [(2, "invoke", "read", None), (2, "ok", "read", [])])
    assert v.verdict == "n/a" and "no final read" in v.summary


def test_keys_are_independent() -> None:
    events = [(0, "invoke", "write", 1, {"key": "a"}), (0, "ok", "write", 1, {"key": "a"}),
              (1, "invoke", "delete", None, {"key": "a"}), (1, "ok", "delete", [1], {"key": "a"}),
              (9, "invoke", "read", None, {"key": "b", "final": True}),
              (9, "ok", "read", [1], {"key": "b", "final": True})]
    v = check_deletes(pair(from_events(events))[0])
    assert v.verdict == "n/a"  # the deleted key had no final read; "b" never deleted 1


def test_registered_alias_and_register_default() -> None:
    assert "deletes" in CHECKERS and resolve(["resurrection"], "register") == ["deletes"]
    assert "deletes" in DEFAULTS["register"]
    calls = pair(from_events(write(0, 1) + delete(1, [1]) + final_read(9, [])))[0]
    assert infer_workload(calls) == "register"


def test_read_your_writes_excuses_reads_after_a_delete() -> None:
    # another process's delete removed the write and its tombstone was reaped: no clock remains
    strict = Quorum(n=3, r=2, w=2, sloppy=False)
    events = [(0, "invoke", "write", 1), (0, "ok", "write", 1, {"clock": {"a": 1}}),
              (1, "invoke", "delete", None), (1, "ok", "delete", [1], {"clock": {"a": 2}}),
              (0, "invoke", "read", None), (0, "ok", "read", [], {"clock": {}})]
    v = check_read_your_writes(pair(from_events(events, key="r1"))[0], strict)
    assert v.verdict == "n/a" and v.evidence["excused_by_delete"] == 1
    assert "excused by an overlapping delete" in v.summary
    # without the delete the same read is a violation
    bad = [e for e in events if e[2] != "delete"]
    assert check_read_your_writes(pair(from_events(bad, key="r1"))[0], strict).verdict == "invalid"


def test_read_your_writes_judges_reads_within_the_tombstone_grace() -> None:
    # the tombstone cannot be reaped yet, so its clock still covers the write: a violation stands
    strict = Quorum(n=3, r=2, w=2, sloppy=False)
    events = [(0, "invoke", "write", 1), (0, "ok", "write", 1, {"clock": {"a": 1}}),
              (1, "invoke", "delete", None), (1, "ok", "delete", [1], {"clock": {"a": 2}}),
              (0, "invoke", "read", None), (0, "ok", "read", [], {"clock": {}})]
    calls = pair(from_events(events, key="r1"))[0]
    assert check_read_your_writes(calls, strict, reap_after_ns=10**12).verdict == "invalid"


def test_reap_after_follows_test_settings() -> None:
    grace = {"settings": {"nemesis": ["crash"],
                          "cluster": {"node_settings": {"tombstone_grace_ms": 200}}}}
    assert reap_after_ns(grace) == 200_000_000
    assert reap_after_ns({"settings": {"nemesis": ["partition"]}}) == 60_000 * 1_000_000
    assert reap_after_ns({"settings": {"nemesis": ["clock"], "cluster": {}}}) == 0


def write_on(p, v, read, typ="ok"):
    """A register write with the context of a read that returned `read`."""
    done = (p, typ, "write", v if typ == "ok" else None, {"read": read})
    return [(p, "invoke", "write", v), done]


def test_overwritten_value_back_in_a_final_read_is_invalid() -> None:
    # 2 replaced 1 (its read returned 1), then a delete removed 2 and its tombstone was reaped
    # while a hint still held 1: 1 comes back
    v = run(write(0, 1) + write_on(1, 2, [1]) + delete(2, [2]) + final_read(9, [1]))
    assert v.verdict == "invalid" and v.evidence["count"] == 1
    e = v.evidence["resurrected"][0]
    assert e["value"] == 1 and e["write"]["value"] == 2 and "delete" not in e
    assert v.summary.startswith("Let W be the write of 2 to key 'r1' by process 1")
    assert "the overwritten value was resurrected" in v.summary


def test_overwritten_values_are_fine_when_absent_and_failed_writes_replace_nothing() -> None:
    assert run(write(0, 1) + write_on(1, 2, [1]) + final_read(9, [2])).verdict == "valid"
    # siblings: 3 was written concurrently with 2 (its read did not return 1... nor 2)
    assert run(write(0, 1) + write_on(1, 2, [1]) + write_on(2, 3, [])
               + final_read(9, [2, 3])).verdict == "valid"
    # a write that failed or may not have happened replaced nothing
    assert run(write(0, 1) + write_on(1, 2, [1], "fail") + write_on(1, 4, [1], "info")
               + final_read(9, [1])).verdict == "n/a"
