"""Resurrected values for the `register` workload: deleted or overwritten, and back.

Values are unique per write, and every write and delete records the values its read returned
(`read`; an ok delete also names them as its result): a write's context covers exactly those
versions, and a tombstone too. Whatever happens to replicas afterwards, a correct store never
answers them again, so a value that an acknowledged delete removed, or that an acknowledged write
replaced, in a FINAL read (after heal and quiesce) came back from a replica or a hint that kept
it while every version that superseded it was forgotten (a tombstone reaped too early): a
resurrection. Reads during the run are not judged: a stale replica may answer them. A value
written again concurrently is a different unique value, so it is never mistaken for one. Without
an acknowledged delete or write with its read, or without a final read of such a key, the checker
is not applicable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checkers.history import Call
from checkers.models import as_set, freeze, show
from checkers.stats import seconds
from checkers.verdict import INVALID, VALID, Verdict

LIST_CAP = 200


def check_deletes(calls: Sequence[Call]) -> Verdict:
    """Invalid when a value removed by an acknowledged delete, or replaced by an acknowledged
    write (its read returned the value), is in a final read of its key."""
    # key -> value -> the first ok delete that removed it, or ok write that replaced it
    gone: dict[Any, dict[Any, Call]] = defaultdict(dict)
    finals: dict[Any, list[Call]] = defaultdict(list)
    deletes_checked = writes_checked = 0
    for c in sorted(calls, key=lambda c: c.pos):
        if c.type != "ok":
            continue
        if c.f == "delete":
            deletes_checked += 1
            for v in as_set(c.result):
                gone[c.key].setdefault(v, c)
        elif c.f == "write" and c.complete is not None and c.complete.read:
            writes_checked += 1
            for v in as_set(c.complete.read):
                gone[c.key].setdefault(v, c)
        elif c.f == "read" and c.final:
            finals[c.key].append(c)

    resurrected: list[dict[str, Any]] = []
    for key, by_value in gone.items():
        for r in finals.get(key, []):
            for v in as_set(r.result):
                by = by_value.get(freeze(v))
                if by is not None:
                    resurrected.append({"key": key, "value": v, by.f: by.to_dict(),
                                        "read": r.to_dict()})
    final_reads = sum(len(rs) for rs in finals.values())
    evidence: dict[str, Any] = {"resurrected": resurrected[:LIST_CAP], "count": len(resurrected),
                                "deletes_checked": deletes_checked,
                                "writes_checked": writes_checked, "final_reads": final_reads}
    if resurrected:
        e = resurrected[0]
        r = e["read"]
        if "delete" in e:
            d = e["delete"]
            let = (f"Let D be the delete of key {e['key']!r} by process {d['process']}, "
                   f"acknowledged at {seconds(d['end'])}, which removed {show(e['value'])}")
            what = "deleted"
        else:
            d = e["write"]
            let = (f"Let W be the write of {show(d['value'])} to key {e['key']!r} by process "
                   f"{d['process']}, acknowledged at {seconds(d['end'])}, with the context of a "
                   f"read that returned {show(e['value'])}, which it replaced")
            what = "overwritten"
        return Verdict(INVALID, (
            f"{let}. Then the final read of {e['key']!r} by process {r['process']}, after heal "
            f"and quiesce, still returns {show(e['value'])}: the {what} value was resurrected "
            f"({len(resurrected)} such value(s) in {final_reads} final reads, {deletes_checked} "
            f"deletes, {writes_checked} writes)."), evidence)
    if deletes_checked + writes_checked == 0:
        return Verdict.not_applicable("No delete, and no write based on a read, was "
                                      "acknowledged, so nothing could have been resurrected.",
                                      evidence)
    if not any(finals.get(k) for k in gone):
        return Verdict.not_applicable(
            f"{deletes_checked} deletes and {writes_checked} writes based on a read were "
            "acknowledged, but no final read (after heal and quiesce) read a key they touched, "
            "so resurrection could not be tested.", evidence)
    return Verdict(VALID, f"No value removed by the {deletes_checked} acknowledged deletes or "
                   f"replaced by the {writes_checked} acknowledged writes based on a read "
                   f"appeared in any of the {final_reads} final reads.", evidence)
