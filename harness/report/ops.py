"""Pure analyses of a history for the report: operations, fault intervals, lanes, statistics.

Times are nanoseconds since the test began (docs/history.md); the report draws seconds.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("ok", "fail", "info")
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Op:
    """One client operation: its invocation joined with its completion."""

    index: int  # history index of the invocation
    process: Any
    f: str
    key: Any
    type: str  # ok / fail / info; info also when the history ends before the completion
    start: int  # ns
    end: int | None  # ns; None when no completion was recorded
    invoke_value: Any
    value: Any
    node: Any = None
    error: Any = None
    siblings: int | None = None
    final: bool = False

    @property
    def latency_ms(self) -> float | None:
        return None if self.end is None else (self.end - self.start) / NS_PER_MS


@dataclass(slots=True)
class FaultInterval:
    fault: str
    label: str
    start: int  # ns
    end: int  # ns
    value: Any
    healed: bool  # False when the history ended with the fault still on


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    faults: list[FaultInterval] = field(default_factory=list)
    nemesis_ops: list[dict[str, Any]] = field(default_factory=list)
    end_ns: int = 0
    unmatched_completions: int = 0
    open_invocations: int = 0


def _fault_label(fault: str, value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind") or value.get("type")
        if kind:
            return f"{fault} ({kind})"
    return fault


def parse_history(rows: list[dict[str, Any]]) -> History:
    """Pair invocations with completions per process; derive the nemesis fault intervals."""
    h = History()
    open_ops: dict[Any, dict[str, Any]] = {}
    open_faults: dict[str, list[tuple[int, Any, str]]] = defaultdict(list)
    pending: dict[str, Any] | None = None  # the first record of a nemesis step
    end_ns = 0

    def step(first: dict[str, Any], last: dict[str, Any]) -> None:
        """One nemesis action, from its first record to its last (ns)."""
        f = first.get("f")
        fault = str(first.get("fault") or last.get("fault") or "fault")
        value = last.get("value") if last.get("value") is not None else first.get("value")
        began, ended = _ns(first, end_ns), _ns(last, end_ns)
        if f == "start":
            open_faults[fault].append((began, value, _fault_label(fault, value)))
        elif f in ("stop", "heal"):
            for name in list(open_faults) if f == "heal" else [fault]:
                for s, v, label in open_faults.pop(name, []):
                    h.faults.append(FaultInterval(name, label, s, ended, v, True))

    for row in rows:
        t = _ns(row, end_ns)
        end_ns = max(end_ns, t)
        proc = row.get("process")
        typ = row.get("type")
        if proc == "nemesis":
            h.nemesis_ops.append(row)
            # a step is two records (both info in ours; invoke then info in Jepsen's) sharing
            # f and fault; a lone record is a step of its own
            if (pending is not None and typ != "invoke" and pending.get("f") == row.get("f")
                    and pending.get("fault") == row.get("fault")):
                step(pending, row)
                pending = None
            else:
                if pending is not None:
                    step(pending, pending)
                pending = row
            continue
        if typ == "invoke":
            open_ops[proc] = row
            continue
        inv = open_ops.pop(proc, None)
        if inv is None:
            h.unmatched_completions += 1
            continue
        h.ops.append(_make_op(inv, row, t))
    for inv in open_ops.values():
        h.ops.append(_make_op(inv, None, None))
    if pending is not None:
        step(pending, pending)
    h.open_invocations = len(open_ops)
    h.end_ns = end_ns
    for name, items in open_faults.items():
        for s, v, label in items:
            h.faults.append(FaultInterval(name, label, s, end_ns, v, False))
    h.ops.sort(key=lambda o: (o.start, o.index))
    h.faults.sort(key=lambda fi: (fi.start, fi.fault))
    return h


def _ns(row: dict[str, Any], default: int) -> int:
    t = row.get("time")
    return int(t) if isinstance(t, int | float) else default


def _make_op(inv: dict[str, Any], done: dict[str, Any] | None, t: int | None) -> Op:
    done = done or {}
    typ = done.get("type") if done.get("type") in OUTCOMES else "info"
    siblings = done.get("siblings")
    return Op(
        index=int(inv.get("index", 0) or 0),
        process=inv.get("process"),
        f=str(inv.get("f")),
        key=inv.get("key"),
        type=typ,
        start=int(inv.get("time", 0) or 0),
        end=t,
        invoke_value=inv.get("value"),
        value=done.get("value") if done else None,
        node=inv.get("node", done.get("node")),
        error=done.get("error") if done else "no completion recorded",
        siblings=siblings if isinstance(siblings, int) else None,
        final=bool(inv.get("final") or done.get("final")),
    )


def assign_lanes(ops: list[Op], max_rows: int = 40) -> tuple[dict[Any, int], list[str], bool]:
    """A row per process when there are few; else reuse rows ("lanes") for retired processes.

    A process retired after an `info` is replaced by a new id, so long faulty runs have hundreds
    of ids but only `concurrency` are ever live at once. Returns process -> row, row labels, and
    whether rows are shared lanes.
    """
    first: dict[Any, int] = {}
    last: dict[Any, int] = {}
    for op in ops:
        end = op.end if op.end is not None else op.start
        if op.process not in first:
            first[op.process] = op.start
        last[op.process] = max(last.get(op.process, end), end)
    procs = sorted(first, key=lambda p: (first[p], str(p)))
    if len(procs) <= max_rows:
        ordered = sorted(procs, key=_proc_sort_key)
        return {p: i for i, p in enumerate(ordered)}, [f"p{p}" for p in ordered], False
    free: list[tuple[int, int]] = []  # (free from, lane)
    lanes: dict[Any, int] = {}
    n = 0
    for p in procs:
        if free and free[0][0] <= first[p]:
            _, lane = heapq.heappop(free)
        else:
            lane, n = n, n + 1
        lanes[p] = lane
        heapq.heappush(free, (last[p], lane))
    return lanes, [f"lane {i}" for i in range(n)], True


def _proc_sort_key(p: Any) -> tuple[int, Any]:
    return (0, p) if isinstance(p, int) else (1, str(p))


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (no interpolation, like most load tools)."""
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def latency_table(ops: list[Op]) -> dict[str, dict[str, dict[str, float]]]:
    """The perf checker's shape: {f: {outcome: {count, p50, p95, p99, p999, max}}} in ms."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for op in ops:
        lat = op.latency_ms
        if lat is not None:
            groups[(op.f, op.type)].append(lat)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (f, outcome), lats in sorted(groups.items()):
        lats.sort()
        out[f][outcome] = {
            "count": len(lats),
            "p50": quantile(lats, 0.5),
            "p95": quantile(lats, 0.95),
            "p99": quantile(lats, 0.99),
            "p999": quantile(lats, 0.999),
            "max": lats[-1],
        }
    return dict(out)


def faults_at(faults: list[FaultInterval], t: int) -> list[str]:
    """Labels of the faults active at time t (ns)."""
    return sorted({fi.label for fi in faults if fi.start <= t <= fi.end})


def sibling_histogram(ops: list[Op]) -> dict[str, int]:
    """How many ok reads returned 1, 2, ... siblings."""
    counts = Counter(op.siblings for op in ops if op.type == "ok" and op.siblings is not None)
    return {str(k): counts[k] for k in sorted(counts)}


def bucket_width_s(duration_s: float, target_buckets: int) -> float:
    """A round bucket width (1, 2, 5 x 10^k seconds) giving at most about target_buckets."""
    raw = max(duration_s, 1e-3) / max(target_buckets, 1)
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        width = m * 10**exp
        if width >= raw:
            return float(width)
    return float(10 ** (exp + 1))
