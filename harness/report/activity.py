"""Hinted handoff, read repair and anti-entropy activity per node, for the report's section 6.

From `stats.jsonl` (the nodes' `/admin/stats` counters, sampled about once a second): a plot over
time and a per-node table of totals. Runs recorded before that file existed fall back to counting
node-log lines that mention each activity, and the page says so.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

from checkers.faults import Fault
from harness.report.figures import base_layout, fault_shapes
from harness.report.ops import NS_PER_S

SCAN_LIMIT_BYTES = 32 * 2**20
PATTERNS: dict[str, re.Pattern[bytes]] = {
    "hinted handoff": re.compile(rb"hint|handoff|hand-off", re.IGNORECASE),
    "anti-entropy": re.compile(rb"anti.?entropy|merkle", re.IGNORECASE),
    "read repair": re.compile(rb"read.?repair", re.IGNORECASE),
}

# current values, not counts since start: the table shows the last sample, the plot the level
GAUGES = ("hints_pending", "tombstones_held")
COUNTERS = ("hints_stored", "hints_handed_off", "read_repairs_sent", "aae_exchanges",
            "aae_keys_repaired", "tombstones_reaped")
# (field, row title, unit): a gauge is drawn as its level, a counter as a rate per second
PLOTTED = (
    ("hints_pending", "Hints pending (held for a down or unreachable owner)", "hints"),
    ("hints_stored", "Hints stored per second (writes taken for another node)", "per s"),
    ("hints_handed_off", "Hints handed off per second", "per s"),
    ("read_repairs_sent", "Read repairs sent per second", "per s"),
    ("aae_keys_repaired", "Anti-entropy keys repaired per second", "per s"),
)
NODE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")
GAP_FACTOR = 2.5  # a node silent for this many median sampling intervals was down or paused


def label(name: str) -> str:
    return name.replace("aae", "AAE").replace("_", " ")


# -- stats.jsonl ---------------------------------------------------------------------------------

def node_series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Valid samples per node, in time order (a row without a numeric time or a node is dropped)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        t, node = r.get("time"), r.get("node")
        if isinstance(t, int | float) and not isinstance(t, bool) and isinstance(node, str):
            out[node].append(r)
    return {n: sorted(s, key=lambda r: r["time"]) for n, s in sorted(out.items())}


def _value(row: dict[str, Any], name: str) -> int | None:
    v = row.get(name)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def sampling_gap_ns(series: dict[str, list[dict[str, Any]]]) -> float:
    """The silence after which a node's line breaks: GAP_FACTOR x the median sample spacing."""
    steps = sorted(b["time"] - a["time"] for s in series.values() for a, b in pairwise(s))
    median = steps[len(steps) // 2] if steps else NS_PER_S
    return GAP_FACTOR * max(median, 1)


def increments(samples: list[dict[str, Any]], name: str) -> list[tuple[dict, dict, float]]:
    """(previous, current, increase) for consecutive samples; a counter that went down restarted
    with its process (counters are since the node started), so the increase is the new value."""
    out = []
    for a, b in pairwise(samples):
        va, vb = _value(a, name), _value(b, name)
        if va is None or vb is None:
            continue
        out.append((a, b, float(vb - va if vb >= va else vb)))
    return out


def node_totals(samples: list[dict[str, Any]], gap_ns: float) -> dict[str, Any]:
    """One table row: each counter summed over the node's restarts, each gauge's last and peak
    value, and how long the node did not answer (down or paused)."""
    extra = sorted({k for r in samples for k in r
                    if k not in ("time", "node") and k not in GAUGES + COUNTERS
                    and _value(r, k) is not None})
    row: dict[str, Any] = {}
    for name in (*COUNTERS, *extra):
        first = next((_value(r, name) for r in samples if _value(r, name) is not None), None)
        row[label(name)] = "—" if first is None else int(
            first + sum(inc for _, _, inc in increments(samples, name)))
    for name in GAUGES:
        last = next((_value(r, name) for r in reversed(samples) if _value(r, name) is not None),
                    None)
        peak = max((_value(r, name) or 0 for r in samples), default=0)
        row[f"{label(name)} last / peak"] = "—" if last is None else f"{last:,} / {peak:,}"
    step = gap_ns / GAP_FACTOR  # a normal sampling interval is not silence
    silent = sum(b["time"] - a["time"] - step for a, b in pairwise(samples)
                 if b["time"] - a["time"] > gap_ns)
    row["silent (s)"] = round(silent / NS_PER_S, 1)
    return row


def totals_table(series: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    gap_ns = sampling_gap_ns(series)
    return [{"node": node, **node_totals(samples, gap_ns)} for node, samples in series.items()]


def _trace_points(samples: list[dict[str, Any]], name: str, gap_ns: float,
                  rate: bool) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    if not rate:
        prev_t = None
        for r in samples:
            v = _value(r, name)
            if prev_t is not None and r["time"] - prev_t > gap_ns:
                xs.append(None)
                ys.append(None)
            prev_t = r["time"]
            xs.append(round(r["time"] / NS_PER_S, 3))
            ys.append(v)
        return xs, ys
    for a, b, inc in increments(samples, name):
        dt = b["time"] - a["time"]
        if dt <= 0:
            continue
        if dt > gap_ns:  # the node was silent (down or paused): break the line there
            xs.append(None)
            ys.append(None)
            continue
        if not xs or xs[-1] is None:
            xs.append(round(a["time"] / NS_PER_S, 3))  # start the step at the interval's start
            ys.append(round(inc * NS_PER_S / dt, 3))
        xs.append(round(b["time"] / NS_PER_S, 3))
        ys.append(round(inc * NS_PER_S / dt, 3))
    return xs, ys


def activity_figure(series: dict[str, list[dict[str, Any]]],
                    faults: list[Fault]) -> tuple[dict[str, Any], str]:
    """Stacked rows sharing the time axis: hints pending, then counter rates per second."""
    rows = len(PLOTTED)
    gap_ns = sampling_gap_ns(series)
    gap = 0.045
    height = (1 - gap * (rows - 1)) / rows
    layout = base_layout("Hinted handoff, read repair and anti-entropy over time", 170 * rows + 90,
                         hovermode="x unified")
    layout["margin"] = {"l": 60, "r": 20, "t": 60, "b": 40}
    data: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, (name, title, unit) in enumerate(PLOTTED):
        top = 1 - i * (height + gap)
        ax = "" if i == 0 else str(i + 1)
        layout[f"yaxis{ax}"] = {"domain": [round(top - height, 4), round(top, 4)],
                                "title": {"text": unit}, "rangemode": "tozero",
                                "anchor": f"x{ax}", "zeroline": True}
        layout[f"xaxis{ax}"] = {"anchor": f"y{ax}", "showticklabels": i == rows - 1,
                                **({"matches": "x"} if i else {}),
                                **({"title": {"text": "seconds since the test began"}}
                                   if i == rows - 1 else {})}
        annotations.append({"text": f"<b>{title}</b>", "x": 0, "xref": "paper", "xanchor": "left",
                            "y": top, "yref": "paper", "yanchor": "bottom", "showarrow": False,
                            "font": {"size": 12}})
        for j, (node, samples) in enumerate(series.items()):
            xs, ys = _trace_points(samples, name, gap_ns, rate=name not in GAUGES)
            color = NODE_COLORS[j % len(NODE_COLORS)]
            data.append({
                "type": "scatter", "mode": "lines", "name": node, "legendgroup": node,
                "showlegend": i == 0, "x": xs, "y": ys, "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                "line": {"color": color, "width": 1.6, "shape": "hv" if name in GAUGES else "vh"},
                "hovertemplate": f"{node}: %{{y:,.3~f}}<extra></extra>",
            })
    shapes, labels = fault_shapes(faults)
    layout["shapes"] = shapes
    layout["annotations"] = annotations + labels
    how = ("From stats.jsonl: each node's /admin/stats counters, sampled about once a second by "
           "the harness. The top row is the number of hints a node holds for other nodes; the "
           "other rows are counter increases per second between consecutive samples. A counter "
           "that went down means its node restarted (counters start at 0 with the process) and "
           "counts from 0. A line breaks where its node did not answer for more than "
           f"{gap_ns / NS_PER_S:.1f} s (killed, paused, or too slow). Shaded: nemesis intervals.")
    return {"data": data, "layout": layout}, how


def summary(series: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """A few headline figures for the section: totals over nodes, and the peak pending hints."""
    table = totals_table(series)
    out = []
    for name in ("hints_stored", "hints_handed_off", "read_repairs_sent", "aae_keys_repaired"):
        values = [r[label(name)] for r in table if isinstance(r[label(name)], int)]
        out.append((f"{label(name)}, all nodes", f"{sum(values):,}"))
    peak = max(((_value(r, "hints_pending") or 0, r["time"], node)
                for node, s in series.items() for r in s), default=None)
    if peak and peak[0] > 0:
        out.append(("peak hints pending on one node",
                    f"{peak[0]:,} ({peak[2]} at {peak[1] / NS_PER_S:.1f} s)"))
    return out


def stats_activity(rows: list[dict[str, Any]], faults: list[Fault]) -> dict[str, Any]:
    """The section's view from stats.jsonl rows, or `source` None when no row is usable."""
    series = node_series(rows)
    if not series:
        return {"source": None}
    figure, how = activity_figure(series, faults)
    return {"source": "stats", "figure": figure, "how": how, "rows": totals_table(series),
            "summary": summary(series)}


# -- the fallback for old runs: node-log lines -----------------------------------------------------

def count_activity(logs: dict[str, Path]) -> tuple[list[dict[str, object]], list[str]]:
    """Rows {"node", <activity>: lines, ...} and notes about logs that were only partly read."""
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    for node, path in sorted(logs.items()):
        counts = dict.fromkeys(PATTERNS, 0)
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                data = f.read(SCAN_LIMIT_BYTES)
        except OSError as e:
            notes.append(f"{node}: log unreadable ({e}).")
            continue
        if size > SCAN_LIMIT_BYTES:
            notes.append(f"{node}: only the first {SCAN_LIMIT_BYTES // 2**20} MiB of "
                         f"{size / 2**20:.0f} MiB of log were counted.")
        for line in data.splitlines():
            for name, pattern in PATTERNS.items():
                if pattern.search(line):
                    counts[name] += 1
        rows.append({"node": node, **counts})
    return rows, notes


def build_activity(stats_rows: list[dict[str, Any]], stats_present: bool,
                   logs: dict[str, Path], faults: list[Fault]) -> dict[str, Any]:
    """Section 6's activity view: from stats.jsonl when it has samples, else from the logs."""
    view = stats_activity(stats_rows, faults)
    if view["source"]:
        view["notes"] = []
        return view
    why = ("stats.jsonl has no usable sample (no node answered /admin/stats)" if stats_present
           else "stats.jsonl is absent (a run recorded before the harness sampled node counters)")
    rows, notes = count_activity(logs)
    if not rows:
        return {"source": None, "why": why, "notes": notes}
    return {"source": "logs", "why": why, "rows": rows, "notes": notes,
            "how": "Counted as log lines that mention each activity in nodes/<id>/node.log: a "
                   "rough substitute for the node counters."}
