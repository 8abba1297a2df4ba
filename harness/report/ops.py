"""Pure analyses of a history for the report: operations, fault intervals, lanes, statistics.

Times are nanoseconds since the test began (docs/history.md); the report draws seconds.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from checkers.faults import Fault, fault_intervals
from checkers.history import Call, Op, pair

OUTCOMES = ("ok", "fail", "info")
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@dataclass
class History:
    """A history as the report draws it: the client calls (paired by `checkers.history.pair`),
    the fault intervals (`checkers.faults.fault_intervals`, a fault never healed clipped to the
    history's end) and the nemesis records."""

    ops: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    nemesis_ops: list[Op] = field(default_factory=list)
    end_ns: int = 0
    open_invocations: int = 0


def parse_history(records: Sequence[Op], source: str = "history") -> History:
    """Pair invocations with completions and derive the fault intervals; a history that cannot
    be paired raises HistoryError naming the line (the checkers' policy)."""
    calls, nemesis = pair(records, source)
    end_ns = max((op.time for op in records), default=0)
    h = History(ops=sorted(calls, key=lambda c: (c.time, c.index)), nemesis_ops=nemesis,
                end_ns=end_ns, open_invocations=sum(1 for c in calls if c.complete is None))
    h.faults = [f if f.healed else replace(f, end=max(end_ns, f.start))
                for f in fault_intervals(nemesis)]
    return h


def assign_lanes(ops: list[Call], max_rows: int = 40) -> tuple[dict[Any, int], list[str], bool]:
    """A row per process when there are few; else reuse rows ("lanes") for retired processes.

    A process retired after an `info` is replaced by a new id, so long faulty runs have hundreds
    of ids but only `concurrency` are ever live at once. Returns process -> row, row labels, and
    whether rows are shared lanes.
    """
    first: dict[Any, int] = {}
    last: dict[Any, int] = {}
    for op in ops:
        end = op.end if op.end is not None else op.time
        if op.process not in first:
            first[op.process] = op.time
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


def latency_table(ops: list[Call]) -> dict[str, dict[str, dict[str, float]]]:
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


def faults_at(faults: list[Fault], t: int) -> list[str]:
    """Labels of the faults active at time t (ns)."""
    return sorted({fi.label for fi in faults if fi.start <= t <= fi.end})


def sibling_histogram(ops: list[Call]) -> dict[str, int]:
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
