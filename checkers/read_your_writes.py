"""Read-your-writes: a process's read must see that process's earlier acknowledged writes.

For each client process and key, a read that follows the process's acknowledged write (`write`,
`put`) or add must return a version that descends from it:
- by clocks, when both carry one: the read's version vector dominates the write's;
- by value otherwise: an add's element is in the read; a write's value is among the read's
  siblings, or a value written by an operation invoked after this write (which may have
  superseded it) is.
A delete is not counted as a write: once its tombstone is reaped (which a correct store may do) a
read answers no clock at all. Instead, a read is not judged against a write when a delete of the
key that did not certainly fail overlapped the span from the write's invocation to the read's
completion and began at least `reap_after_ns` (the store's tombstone grace) before the read
ended: that delete may have removed the write's value and its tombstone may be reaped by then.
With R + W > N and strict quorums a violation makes the history invalid; with sloppy quorums (or
R + W <= N) the store does not promise it, so violations are counted and reported as expected.
When no process read a key after writing it (or every such read was excused), the checker is not
applicable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkers.history import Call
from checkers.models import as_set, freeze, show
from checkers.stats import seconds
from checkers.verdict import INVALID, VALID, Verdict

WRITES = ("write", "put")
LIST_CAP = 200


@dataclass(frozen=True)
class Quorum:
    """The store's replication settings the test ran with (node defaults when unknown).

    Its defaults are the harness's one copy of the reference node's N, R, W and sloppy
    defaults: `harness.settings.ClusterSettings` (and so every flag) takes them from here,
    since checkers may not import harness; node/config.py keeps its own (the node imports none
    of the others) and tests/test_defaults.py holds the two equal."""

    n: int = 3
    r: int = 2
    w: int = 2
    sloppy: bool = True

    @property
    def strict(self) -> bool:
        """Does the store promise read-your-writes here?"""
        return self.r + self.w > self.n and not self.sloppy

    def describe(self) -> str:
        mode = "sloppy" if self.sloppy else "strict"
        return f"N={self.n}, R={self.r}, W={self.w}, {mode} quorums"


DEFAULT_QUORUM = Quorum()


def _descends(read_clock: dict[str, int], write_clock: dict[str, int]) -> bool:
    return all(read_clock.get(a, 0) >= c for a, c in write_clock.items())


def check_read_your_writes(calls: Sequence[Call], quorum: Quorum | None = None,
                           reap_after_ns: int = 0) -> Verdict:
    """Check every ok read against its process's latest acknowledged write of the same key."""
    quorum = quorum or Quorum()
    writer_invoked: dict[Any, int] = {}  # value -> invocation time of its (first) write
    for c in calls:
        if c.f in WRITES and c.type != "fail":
            writer_invoked.setdefault(freeze(c.invoke.value), c.time)

    deletes: dict[Any, list[Call]] = {}
    for c in calls:
        if c.f == "delete" and c.type != "fail":
            deletes.setdefault(c.key, []).append(c)

    def deleted_between(key: Any, start: int, end: int) -> bool:
        return any(d.time < end and (d.end is None or d.end > start)
                   and end - d.time >= reap_after_ns for d in deletes.get(key, ()))

    last_write: dict[tuple[Any, Any], Call] = {}
    added: dict[tuple[Any, Any], set[Any]] = {}  # elements each process added, per key
    violations: list[dict[str, Any]] = []
    checked = by_clock = by_value = excused = 0
    # a process is sequential: each call starts after its previous one completed
    for c in sorted(calls, key=lambda c: c.pos):
        if c.type != "ok":
            continue
        pk = (c.process, c.key)
        if c.f in WRITES:
            last_write[pk] = c
            continue
        if c.f == "add":
            added.setdefault(pk, set()).add(freeze(c.invoke.value))
            last_write[pk] = c
            continue
        if c.f != "read":
            continue
        w = last_write.get(pk)
        if w is None:
            continue
        assert c.complete is not None and w.complete is not None
        if deleted_between(c.key, w.time, c.end or 0):
            excused += 1
            continue
        checked += 1
        rclock, wclock = c.complete.clock, w.complete.clock
        if rclock is not None and wclock is not None:
            by_clock += 1
            if not _descends(rclock, wclock):
                behind = {a: (rclock.get(a, 0), n) for a, n in wclock.items()
                          if rclock.get(a, 0) < n}
                gaps = ", ".join(f"{a}: {got} < {want}" for a, (got, want) in behind.items())
                violations.append({
                    "write": w.to_dict(), "read": c.to_dict(), "by": "clock",
                    "explanation": (f"the read's clock does not descend from the write's "
                                    f"({gaps})"),
                })
            continue
        by_value += 1
        seen = as_set(c.result)
        if w.f == "add":
            missing = added[pk] - seen
            if missing:
                shown = ", ".join(show(v) for v in sorted(missing, key=repr)[:5])
                violations.append({
                    "write": w.to_dict(), "read": c.to_dict(), "by": "value",
                    "missing": sorted(missing, key=repr)[:LIST_CAP],
                    "explanation": f"the read lacks {len(missing)} element(s) this process "
                                   f"added: {shown}",
                })
            continue
        mine = freeze(w.invoke.value)
        if mine in seen:
            continue
        if any(writer_invoked.get(v, -1) > w.time for v in seen):
            continue  # a later write may have superseded ours
        violations.append({
            "write": w.to_dict(), "read": c.to_dict(), "by": "value",
            "explanation": (f"the read answered {show(c.result)}, which neither contains "
                            f"{show(w.invoke.value)} nor any value written after it"),
        })

    evidence: dict[str, Any] = {
        "violations": violations[:LIST_CAP], "count": len(violations), "strict": quorum.strict,
        "checked_reads": checked, "by_clock": by_clock, "by_value": by_value,
        "excused_by_delete": excused,
        "n": quorum.n, "r": quorum.r, "w": quorum.w, "sloppy": quorum.sloppy,
    }
    if not violations:
        if checked == 0:
            why = (f" ({excused} such read(s) were excused by an overlapping delete)"
                   if excused else "")
            return Verdict.not_applicable("No process read a key after writing it, so "
                                          f"read-your-writes could not be tested{why}.", evidence)
        return Verdict(VALID, f"All {checked} reads that followed their own process's write "
                       f"saw it ({quorum.describe()}).", evidence)
    v = violations[0]
    wr, rd = v["write"], v["read"]
    key = f" of key {wr['key']!r}" if "key" in wr else ""
    story = (f"Let W be the {wr['f']} of {show(wr.get('invoke_value', wr['value']))}{key} by "
             f"process {wr['process']}, acknowledged at {seconds(wr['end'])}, and R the same "
             f"process's next read, invoked at {seconds(rd['time'])}. Then {v['explanation']}")
    if quorum.strict:
        return Verdict(INVALID, f"{story}; with {quorum.describe()} the store promised it "
                       f"({len(violations)} of {checked} reads).", evidence)
    return Verdict(VALID, f"{len(violations)} of {checked} reads missed their own process's "
                   f"write, which {quorum.describe()} allow; for example: {story}.", evidence)
