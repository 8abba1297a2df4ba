"""Sibling preservation (register): an acknowledged write survives in the final reads unless a
write or delete based on a read of it superseded it. Judged from the recorded reads only."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import from_events, pair, read_jsonl
from checkers.preservation import LOST_CAP, check_preservation
from checkers.registry import ALIASES, CHECKERS, DEFAULTS, resolve

FINAL = {"final": True}


def run(events: list[tuple[Any, ...]]):  # type: ignore[no-untyped-def]
    return check_preservation(pair(from_events(events, key="r1"))[0])


def write(p: int, v: int, read: list[int] | None, typ: str = "ok") -> list[tuple[Any, ...]]:
    extra = {} if read is None else {"read": read}
    return [(p, "invoke", "write", v), (p, typ, "write", v if typ == "ok" else None, extra)]


def delete(p: int, read: list[int], typ: str = "ok") -> list[tuple[Any, ...]]:
    return [(p, "invoke", "delete", None),
            (p, typ, "delete", read if typ == "ok" else None, {"read": read})]


def final_read(p: int, values: list[int]) -> list[tuple[Any, ...]]:
    return [(p, "invoke", "read", None, FINAL), (p, "ok", "read", values, FINAL)]


def test_acknowledged_write_in_final_read_is_valid() -> None:
    v = run(write(0, 1, []) + final_read(9, [1]))
    assert v.verdict == "valid"
    assert v.evidence["present_count"] == 1 and v.evidence["lost_count"] == 0


def test_lost_write_is_invalid_with_evidence() -> None:
    v = run(write(0, 1, []) + write(1, 2, []) + final_read(9, [2]))
    assert v.verdict == "invalid" and v.evidence["lost_count"] == 1
    lost = v.evidence["lost_writes"][0]
    assert lost["key"] == "r1" and lost["value"] == 1
    w = lost["write"]
    assert (w["process"], w["index"], w["f"], w["type"], w["read"]) == (0, 0, "write", "ok", [])
    assert isinstance(w["time"], int) and isinstance(w["end"], int)
    assert [r["process"] for r in lost["final_reads"]] == [9]
    assert lost["final_reads"][0]["value"] == [2] and lost["final_read_count"] == 1
    assert "no write or delete that may have happened" in lost["why"]
    assert v.summary.startswith("Let W be the write of 1 to key 'r1' by process 0 (index 0)")
    assert "based on a read of 1" in v.summary


def test_write_superseded_by_an_ok_write_that_read_it_is_valid() -> None:
    v = run(write(0, 1, []) + write(1, 2, [1]) + final_read(9, [2]))
    assert v.verdict == "valid" and v.evidence["superseded_count"] == 1


def test_write_superseded_by_an_info_write_is_valid() -> None:
    # the info write may have happened: final read holds neither 1 nor 2 is still no proof
    v = run(write(0, 1, []) + write(1, 2, [1], typ="info") + final_read(9, [2]))
    assert v.verdict == "valid"
    v = run(write(0, 1, []) + write(1, 2, [1], typ="info") + final_read(9, []))
    assert v.verdict == "valid"


def test_write_superseded_by_a_pending_write_is_valid() -> None:
    events = write(0, 1, []) + [(1, "invoke", "write", 2, {"read": [1]})] + final_read(9, [])
    assert run(events).verdict == "valid"


def test_write_superseded_only_by_a_failed_write_is_invalid() -> None:
    v = run(write(0, 1, []) + write(1, 2, [1], typ="fail") + final_read(9, []))
    assert v.verdict == "invalid"
    lost = v.evidence["lost_writes"][0]
    assert lost["value"] == 1 and lost["failed_based_on"]["process"] == 1
    assert "only a failed write" in lost["why"]


def test_write_superseded_by_a_delete_that_read_it_is_valid() -> None:
    assert run(write(0, 1, []) + delete(1, [1]) + final_read(9, [])).verdict == "valid"
    assert run(write(0, 1, []) + delete(1, [1], "info") + final_read(9, [])).verdict == "valid"
    assert run(write(0, 1, []) + delete(1, [1], "fail") + final_read(9, [])).verdict == "invalid"


def test_concurrent_writes_from_the_same_read_must_both_survive() -> None:
    base = write(0, 1, [])
    both = base + write(1, 2, [1]) + write(2, 3, [1])
    assert run(both + final_read(9, [2, 3])).verdict == "valid"
    v = run(both + final_read(9, [3]))
    assert v.verdict == "invalid" and v.evidence["lost_count"] == 1
    lost = v.evidence["lost_writes"][0]
    assert lost["value"] == 2
    assert [(o["value"], o["read"]) for o in lost["survivors"]] == [(3, [1])]
    assert "concurrent" in lost["why"]


def test_a_blind_write_supersedes_nothing() -> None:
    # 2 was written blind (its read returned nothing): it does not excuse 1's absence
    v = run(write(0, 1, []) + write(1, 2, []) + final_read(9, [2]))
    assert v.verdict == "invalid"
    assert [x["value"] for x in v.evidence["lost_writes"]] == [1]


def test_every_final_read_must_lack_the_value() -> None:
    # one final read attempt of the key holding the value is enough
    assert run(write(0, 1, []) + final_read(9, []) + final_read(10, [1])).verdict == "valid"
    v = run(write(0, 1, []) + final_read(9, []) + final_read(10, []))
    assert v.verdict == "invalid" and v.evidence["lost_writes"][0]["final_read_count"] == 2


def test_non_final_reads_are_not_judged() -> None:
    events = write(0, 1, []) + [(3, "invoke", "read", None), (3, "ok", "read", [])]
    assert run(events + final_read(9, [1])).verdict == "valid"


def test_no_final_reads_is_not_applicable() -> None:
    v = run(write(0, 1, []) + [(3, "invoke", "read", None), (3, "ok", "read", [])])
    assert v.verdict == "n/a" and "final" in v.summary


def test_no_acknowledged_write_is_not_applicable() -> None:
    v = run(write(0, 1, [], typ="fail") + final_read(9, []))
    assert v.verdict == "n/a"


def test_history_without_read_records_is_not_applicable() -> None:
    v = run(write(0, 1, None) + write(1, 2, None) + final_read(9, [2]))
    assert v.verdict == "n/a" and "read" in v.summary


def test_a_write_whose_read_was_not_recorded_leaves_it_unknown() -> None:
    # process 1's write ended info without a recorded read: it may have read and replaced 1
    v = run(write(0, 1, []) + write(1, 2, None, typ="info") + write(2, 3, [2])
            + final_read(9, [3]))
    assert v.verdict == "unknown" and v.evidence["unresolved_count"] == 1
    assert v.evidence["writes_without_read"] == 1 and "recorded no read" in v.summary
    # but a write acknowledged after such a call ended is judged as usual
    v = run(write(1, 2, None, typ="info") + write(0, 1, []) + write(2, 3, [2])
            + final_read(9, [3]))
    assert v.verdict == "invalid" and v.evidence["lost_writes"][0]["value"] == 1


def test_keys_are_judged_separately() -> None:
    events = ([(0, "invoke", "write", 1, {"key": "a"}),
               (0, "ok", "write", 1, {"key": "a", "read": []})]
              + [(1, "invoke", "write", 2, {"key": "b"}),
                 (1, "ok", "write", 2, {"key": "b", "read": [1]})]
              + [(9, "invoke", "read", None, {"key": "a", "final": True}),
                 (9, "ok", "read", [], {"key": "a", "final": True}),
                 (10, "invoke", "read", None, {"key": "b", "final": True}),
                 (10, "ok", "read", [2], {"key": "b", "final": True})])
    v = run(events)  # a write on key b that read "1" does not supersede key a's 1
    assert v.verdict == "invalid" and v.evidence["lost_writes"][0]["key"] == "a"


def test_evidence_is_capped_with_an_exact_count() -> None:
    n = LOST_CAP + 7
    events = list(itertools.chain.from_iterable(write(i, i + 1, []) for i in range(n)))
    v = run(events + final_read(999, []))
    assert v.evidence["lost_count"] == n and len(v.evidence["lost_writes"]) == LOST_CAP
    json.dumps(v.to_dict())


def test_registry_names_it_and_register_runs_it_by_default() -> None:
    assert "sibling-preservation" in CHECKERS
    assert "sibling-preservation" not in ALIASES and ALIASES["lost-writes"] == "set"
    assert resolve(["sibling-preservation"], "register") == ["sibling-preservation"]
    assert "sibling-preservation" in DEFAULTS["register"]


def test_read_field_survives_history_jsonl(tmp_path: Path) -> None:
    recs = [{"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", "key": "r1",
             "value": 1},
            {"index": 1, "time": 5, "process": 0, "type": "info", "f": "write", "key": "r1",
             "value": None, "error": "timeout", "read": [7]}]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    ops = read_jsonl(path)
    assert ops[1].read == [7] and ops[0].read is None
    assert ops[1].to_dict()["read"] == [7]


# -- property: a correct multi-value register never loses a write ---------------------------

@st.composite
def mv_register_runs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Sequential ops on a correct multi-value register (siblings kept, a write replaces exactly
    what its read returned), interleaved read/write steps so writes are often concurrent; some
    writes fail (no effect) or end info (effect applied or not)."""
    state: set[int] = set()
    pending: dict[int, tuple[str, set[int]]] = {}  # process -> (op, what its read returned)
    events: list[tuple[Any, ...]] = []
    value = 0
    for _ in range(draw(st.integers(1, 40))):
        p = draw(st.integers(0, 3))
        if p not in pending:
            f = draw(st.sampled_from(["write", "write", "delete", "read"]))
            if f == "read":
                events += [(p, "invoke", "read", None), (p, "ok", "read", sorted(state))]
                continue
            value += 1
            events.append((p, "invoke", f, value if f == "write" else None))
            pending[p] = (f, set(state))  # the read part happens now
            continue
        f, read = pending.pop(p)
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        applied = outcome == "ok" or (outcome == "info" and draw(st.booleans()))
        v = next(e[3] for e in reversed(events) if e[0] == p and e[1] == "invoke")
        if applied:
            state -= read
            if f == "write":
                state.add(v)
        result = (v if f == "write" else sorted(read)) if outcome == "ok" else None
        events.append((p, outcome, f, result, {"read": sorted(read)}))
    for p, (f, read) in pending.items():  # still pending when the history ends: never applied
        events.append((p, "info", f, None, {"read": sorted(read)}))
    events += final_read(99, sorted(state))
    return events


@settings(max_examples=200, deadline=None)
@given(mv_register_runs())
def test_correct_multi_value_register_is_never_invalid(events: list[tuple[Any, ...]]) -> None:
    v = run(events)
    assert v.verdict in ("valid", "n/a"), v.summary


def test_report_shows_the_lost_write_with_the_operations_that_prove_it(tmp_path: Path) -> None:
    from harness.report import render_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = write(0, 1, []) + write(1, 2, [1], typ="fail") + final_read(9, [])
    ops = from_events(events, key="r1")
    (run_dir / "history.jsonl").write_text(
        "".join(json.dumps(op.to_dict()) + "\n" for op in ops))
    v = check_preservation(pair(ops)[0])
    (run_dir / "results.json").write_text(json.dumps(
        {"verdict": v.verdict, "checkers": {"sibling-preservation": v.to_dict()}}))
    html = render_run(run_dir).read_text(encoding="utf-8")
    assert 'data-kind="sibling-preservation"' in html
    assert "write <b>1</b>" in html and ">final read<" in html and ">failed, read it<" in html
    why = v.evidence["lost_writes"][0]["why"]
    assert why.split(", and ")[1] in html  # the part without quotes, which the page escapes
