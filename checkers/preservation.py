"""Sibling preservation for the `register` workload, judged from the history alone.

The store's vector clocks are not trusted: what a write superseded is what its own read returned.
Every write and delete records `read`, the values the read before it returned (ok, info or fail
alike). Values are unique per write, so:

- a write or delete that may have happened (ok, info, or still pending; not fail) whose read
  returned v *supersedes* v: it was based on v and may legitimately have replaced it;
- a write whose read returned nothing (a blind write) supersedes nothing;
- an acknowledged (ok) write of v is *lost* when at least one final read of its key (after heal
  and quiesce; `final` in the history) began after the write was acknowledged, none of those
  final reads contains v, and nothing supersedes v.

Concurrent writes (neither read the other) supersede neither one another, so both must survive
as siblings; a store that keeps only one loses the other.

A write or delete that may have happened but recorded no read (interrupted by the harness, or
pending when the history ended) may have read anything on its key: a missing value it could have
superseded (written, i.e. invoked, before that call ended) is *unresolved*, not lost, and makes
the verdict unknown rather than valid. A history in which no write or delete records its read at
all (written before `read` was recorded) cannot be judged: not applicable.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checkers.history import Call
from checkers.models import as_set, freeze, show
from checkers.stats import seconds
from checkers.verdict import INVALID, UNKNOWN, VALID, Verdict

WRITES = ("write", "delete")
LOST_CAP = 50  # lost writes listed in the evidence; `lost_count` is exact
READS_CAP = 5  # final reads / surviving writes listed per lost write


def _read_of(c: Call) -> list[Any] | None:
    """The values the call's read returned, from its completion (None: not recorded)."""
    if c.complete is not None and c.complete.read is not None:
        return c.complete.read
    return c.invoke.read


def _quote(c: Call) -> dict[str, Any]:
    d = c.to_dict()
    read = _read_of(c)
    if read is not None:
        d["read"] = read
    return d


def check_preservation(calls: Sequence[Call]) -> Verdict:
    """Invalid when an acknowledged write is in no final read of its key and no write or delete
    that may have happened was based on a read that returned it."""
    superseded: set[tuple[Any, Any]] = set()  # (key, value) some may-have-happened call read
    failed_on: dict[tuple[Any, Any], Call] = {}  # ... only a failed call read (not an excuse)
    unrecorded_until: dict[Any, float] = {}  # key -> latest end of a call with no recorded read
    unrecorded = recorded = 0
    acked: list[Call] = []
    writer: dict[tuple[Any, Any], Call] = {}  # (key, value) -> the write of that value
    finals: dict[Any, list[tuple[Call, set[Any]]]] = defaultdict(list)
    for c in calls:
        if c.f == "read":
            if c.final and c.type == "ok":
                finals[c.key].append((c, as_set(c.result)))
            continue
        if c.f not in WRITES:
            continue
        read = _read_of(c)
        if c.f == "write":
            writer.setdefault((c.key, freeze(c.invoke.value)), c)
            if c.type == "ok":
                acked.append(c)
        if read is None:
            if c.type != "fail":
                unrecorded += 1
                end = math.inf if c.end is None else c.end
                unrecorded_until[c.key] = max(unrecorded_until.get(c.key, -math.inf), end)
            continue
        recorded += 1
        values = as_set(read)
        if c.type == "fail":
            for v in values:
                failed_on.setdefault((c.key, v), c)
            continue
        superseded.update((c.key, v) for v in values)

    final_count = sum(len(rs) for rs in finals.values())
    base = {"acknowledged_count": len(acked), "final_reads": final_count,
            "writes_with_read": recorded, "writes_without_read": unrecorded}
    if not acked:
        return Verdict.not_applicable("No write was acknowledged, so no write could be lost.",
                                      base)
    if not finals:
        return Verdict.not_applicable(
            "No read is marked final (after heal and quiesce), so whether acknowledged writes "
            "survived cannot be judged.", base)
    if recorded == 0:
        return Verdict.not_applicable(
            "No write or delete in this history records what its read returned (`read`; older "
            "histories lack it), so which writes superseded which cannot be judged without "
            "trusting the store's clocks.", base)

    lost: list[dict[str, Any]] = []
    unresolved: list[dict[str, Any]] = []
    present = excused = unchecked = 0
    for w in acked:
        assert w.end is not None
        later = [(r, s) for r, s in finals.get(w.key, ()) if r.time > w.end]
        if not later:
            unchecked += 1  # no final read of the key began after the acknowledgement
            continue
        v = freeze(w.invoke.value)
        missing = [r for r, s in later if v not in s]
        if len(missing) < len(later):
            present += 1
            continue
        if (w.key, v) in superseded:
            excused += 1
            continue
        if w.time < unrecorded_until.get(w.key, -math.inf):
            unresolved.append({"key": w.key, "value": w.invoke.value, "write": _quote(w)})
            continue
        item: dict[str, Any] = {
            "key": w.key, "value": w.invoke.value, "write": _quote(w),
            "final_reads": [_quote(r) for r in missing[:READS_CAP]],
            "final_read_count": len(missing),
            "why": (f"{show(w.invoke.value)} is in none of the {len(missing)} final read(s) of "
                    f"key {w.key!r}, and no write or delete that may have happened (ok or info) "
                    f"was based on a read that returned it"),
        }
        f = failed_on.get((w.key, v))
        if f is not None:
            item["failed_based_on"] = _quote(f)
            item["why"] += f"; only a failed {f.f} (index {f.invoke.index}) read it"
        # the writes of what survived instead, with their reads: none read v, so each was
        # concurrent with W (or came after it blind) and should sit beside it as a sibling
        survivors = [writer[(w.key, x)] for x in sorted(as_set(missing[0].result), key=repr)
                     if (w.key, x) in writer]
        if survivors:
            item["survivors"] = [_quote(o) for o in survivors[:READS_CAP]]
            read = _read_of(w)
            same = [o for o in survivors if read is not None and _read_of(o) is not None
                    and as_set(_read_of(o)) == as_set(read)]
            if same:
                item["why"] += (f"; the write of {show(same[0].invoke.value)}, which survived, "
                                "was based on the same read, so the two were concurrent and "
                                "both should have been kept as siblings")
        lost.append(item)

    evidence: dict[str, Any] = {
        "lost_writes": lost[:LOST_CAP], "lost_count": len(lost),
        "unresolved_count": len(unresolved),
        "present_count": present, "superseded_count": excused, "unchecked_count": unchecked,
        **base,
    }
    if unresolved:  # rare (an interrupted write); left out when empty to keep the report quiet
        evidence["unresolved"] = unresolved[:LOST_CAP]
    lacking = (f" {unrecorded} write(s)/delete(s) that may have happened recorded no read; "
               "they were taken to possibly supersede anything written on their key before they "
               "ended.") if unrecorded else ""
    if lost:
        x = lost[0]
        w, r = x["write"], x["final_reads"][0]
        return Verdict(INVALID, (
            f"Let W be the write of {show(x['value'])} to key {x['key']!r} by process "
            f"{w['process']} (index {w['index']}), acknowledged at {seconds(w['end'])}. Then "
            f"the final read of {x['key']!r} by process {r['process']} (index {r['index']}) "
            f"returns {show(r['value'])}, and no write or delete that may have happened was "
            f"based on a read of {show(x['value'])}: an acknowledged write was lost "
            f"({len(lost)} of {len(acked)} acknowledged writes lost).{lacking}"), evidence)
    if unresolved:
        x = unresolved[0]
        return Verdict(UNKNOWN, (
            f"{len(unresolved)} acknowledged write(s) (the first: {show(x['value'])} to key "
            f"{x['key']!r}) are in no final read, and only a write or delete whose read was not "
            f"recorded could have superseded them.{lacking}"), evidence)
    checked = present + excused
    if checked == 0:
        return Verdict.not_applicable(
            f"None of the {len(acked)} acknowledged writes was followed by a final read of its "
            "key, so whether they survived cannot be judged.", evidence)
    note = f"; {unchecked} had no final read of their key after them" if unchecked else ""
    return Verdict(VALID, (
        f"Every one of the {checked} acknowledged writes a final read could see survived: "
        f"{present} are in the final reads and {excused} were superseded by a write or delete "
        f"based on a read that returned them{note}.{lacking}"), evidence)
