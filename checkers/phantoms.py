"""Phantom reads: every value a read returns was written by some write that may have happened.

Sound for any store, Dynamo included (siblings and stale reads are fine): a read may only answer
values that a `write` (or `put`) tried to write, whose write did not certainly fail, and whose
write was invoked before the read completed. Anything else is a value from nowhere, a resurrected
failed write, or a read from the future. A history without a completed read is not applicable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from checkers.history import Call
from checkers.models import freeze, show
from checkers.stats import seconds
from checkers.verdict import INVALID, VALID, Verdict

WRITES = ("write", "put")
READS = ("read", "get")
LIST_CAP = 200


def check_phantoms(calls: Sequence[Call]) -> Verdict:
    """Invalid when a read answers a value no write could have produced by then."""
    writes: dict[tuple[Any, Any], list[Call]] = {}
    for c in calls:
        if c.f in WRITES:
            writes.setdefault((c.key, freeze(c.invoke.value)), []).append(c)
    phantoms: list[dict[str, Any]] = []
    checked = 0
    for c in calls:
        if c.f not in READS or c.type != "ok" or c.complete is None:
            continue
        checked += 1
        value = c.complete.value
        values = value if isinstance(value, list) else [] if value is None else [value]
        for v in values:
            cands = writes.get((c.key, freeze(v)), [])
            if not cands:
                why = "no operation ever wrote it"
            elif all(w.type == "fail" for w in cands):
                why = "its write failed, so it certainly did not happen"
            elif all(w.time > (c.end or 0) for w in cands if w.type != "fail"):
                why = "its write was invoked only after the read completed"
            else:
                continue
            phantoms.append({"read": c.to_dict(), "value": v, "why": why})
    evidence: dict[str, Any] = {"phantoms": phantoms[:LIST_CAP], "count": len(phantoms),
                                "reads_checked": checked}
    if phantoms:
        p = phantoms[0]
        r = p["read"]
        key = f" of key {r['key']!r}" if "key" in r else ""
        return Verdict(INVALID, (
            f"Let R be the read{key} by process {r['process']}, completed at "
            f"{seconds(r['end'])}. Then R answered {show(p['value'])}, but {p['why']} "
            f"({len(phantoms)} such value(s) in {checked} reads)."), evidence)
    if checked == 0:
        return Verdict.not_applicable("No read completed, so no read could be checked for "
                                      "phantom values.", evidence)
    return Verdict(VALID, f"Every value returned by the {checked} reads had been written by a "
                   "write that may have happened.", evidence)
