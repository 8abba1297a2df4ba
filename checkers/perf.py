"""Performance and availability: latency quantiles, throughput over time, and the fraction of
operations that succeeded while each fault was active versus while the cluster was healthy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checkers.faults import FaultTimeline
from checkers.history import Call
from checkers.siblings import sibling_histogram, single_fraction
from checkers.stats import summary_ms
from checkers.verdict import VALID, Verdict


def check_perf(calls: Sequence[Call], timeline: FaultTimeline | None = None) -> Verdict:
    """Statistics only: valid when there were operations to measure, not applicable otherwise."""
    timeline = timeline or FaultTimeline([])
    lat: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    per_second: dict[int, int] = defaultdict(int)
    per_second_type: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    avail: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # name -> [ok, total]
    completed = 0
    for c in calls:
        if c.complete is None:
            continue
        completed += 1
        assert c.end is not None
        typ = c.complete.type
        lat[c.f][typ].append(c.end - c.time)
        sec = int(c.end // 1_000_000_000)
        per_second[sec] += 1
        per_second_type[typ][sec] += 1
        faults = timeline.active(c.time, c.end) if timeline else []
        for name in faults or ["healthy"]:
            slot = avail[name]
            slot[0] += typ == "ok"
            slot[1] += 1
    latency = {f: {t: summary_ms(xs) for t, xs in sorted(by.items())}
               for f, by in sorted(lat.items())}
    span = range(min(per_second), max(per_second) + 1) if per_second else range(0)
    throughput = [[s, per_second.get(s, 0)] for s in span]
    availability = {name: round(ok / total, 4) for name, (ok, total) in sorted(avail.items())}
    hist = sibling_histogram(calls)
    evidence: dict[str, Any] = {
        "latency": latency, "throughput": throughput,
        "throughput_by_type": {t: [[s, by.get(s, 0)] for s in span]
                               for t, by in sorted(per_second_type.items())},
        "availability": availability,
        "availability_counts": {n: {"ok": ok, "total": t} for n, (ok, t) in avail.items()},
        "completed": completed, "pending": len(calls) - completed,
        "sibling_histogram": hist, "single_sibling_fraction": single_fraction(hist),
    }
    if completed == 0:
        return Verdict.not_applicable("No client operation completed, so there is nothing to "
                                      "measure.", evidence)
    parts = [f"{name} {100 * frac:.1f}%" for name, frac in availability.items()]
    secs = max(1, len(throughput))
    p99 = [f"{f} p99 {by['ok']['p99']} ms" for f, by in latency.items() if "ok" in by]
    return Verdict(VALID, (
        f"{completed} operations completed ({completed / secs:.1f}/s); succeeded: "
        f"{', '.join(parts)}; {', '.join(p99) or 'no successful operation'}."), evidence)
