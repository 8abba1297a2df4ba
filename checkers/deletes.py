"""Resurrected deletes for the `register` workload.

Values are unique per write, and an ok `delete` names the values its read returned: the tombstone
covers exactly those versions. Whatever happens to replicas afterwards, a correct store never
answers them again, so a deleted value in a FINAL read (after heal and quiesce) came back from a
replica that kept it while the tombstone was forgotten: a resurrection. A value written again
concurrently is a different unique value, so it is never mistaken for one. Without an acknowledged
delete, or without a final read of a deleted key, the checker is not applicable.
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
    """Invalid when a value removed by an acknowledged delete is in a final read of its key."""
    deleted: dict[Any, dict[Any, Call]] = defaultdict(dict)  # key -> value -> first ok delete
    finals: dict[Any, list[Call]] = defaultdict(list)
    for c in sorted(calls, key=lambda c: c.pos):
        if c.type != "ok":
            continue
        if c.f == "delete":
            for v in as_set(c.result):
                deleted[c.key].setdefault(v, c)
        elif c.f == "read" and c.final:
            finals[c.key].append(c)

    deletes_checked = sum(1 for c in calls if c.f == "delete" and c.type == "ok")
    resurrected: list[dict[str, Any]] = []
    for key, gone in deleted.items():
        for r in finals.get(key, []):
            for v in as_set(r.result):
                d = gone.get(freeze(v))
                if d is not None:
                    resurrected.append({"key": key, "value": v, "delete": d.to_dict(),
                                        "read": r.to_dict()})
    final_reads = sum(len(rs) for rs in finals.values())
    evidence: dict[str, Any] = {"resurrected": resurrected[:LIST_CAP], "count": len(resurrected),
                                "deletes_checked": deletes_checked, "final_reads": final_reads}
    if resurrected:
        e = resurrected[0]
        d, r = e["delete"], e["read"]
        return Verdict(INVALID, (
            f"Let D be the delete of key {e['key']!r} by process {d['process']}, acknowledged at "
            f"{seconds(d['end'])}, which removed {show(e['value'])}. Then the final read of "
            f"{e['key']!r} by process {r['process']}, after heal and quiesce, still returns "
            f"{show(e['value'])}: the deleted value was resurrected ({len(resurrected)} such "
            f"value(s) in {final_reads} final reads, {deletes_checked} deletes)."), evidence)
    if deletes_checked == 0:
        return Verdict.not_applicable("No delete was acknowledged, so nothing could have been "
                                      "resurrected.", evidence)
    if not any(finals.get(k) for k in deleted):
        return Verdict.not_applicable(
            f"{deletes_checked} deletes were acknowledged, but no final read (after heal and "
            "quiesce) read a key that was deleted, so resurrection could not be tested.", evidence)
    return Verdict(VALID, f"No value removed by the {deletes_checked} acknowledged deletes "
                   f"appeared in any of the {final_reads} final reads.", evidence)
