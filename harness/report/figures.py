"""Plotly figure specifications (plain dicts, drawn by the inlined plotly.js in the page).

Dicts rather than `plotly.graph_objects` because validating 100,000-point figures in Python costs
seconds; the specs follow plotly.js's schema. Every builder that drops or merges points returns a
sentence saying how, for the page to print under the plot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from checkers.faults import Fault
from checkers.history import Call
from harness.report.ops import NS_PER_S, OUTCOMES, bucket_width_s, quantile

COLORS = {"ok": "#2f9e5a", "fail": "#e3a21a", "info": "#8a63d2"}
ANOMALY = "#d62728"
FAULT_COLORS = {
    "partition": "#e4572e",
    "clock": "#2f7fd0",
    "crash": "#7b2cbf",
    "crash-many": "#4a1486",
    "pause": "#c9a227",
    "packet": "#16a085",
    "power": "#b5179e",
    "wipe": "#5c4033",
}
FALLBACK_FAULT_COLOR = "#888888"
EXACT_TIMELINE_LIMIT = 10_000  # ops drawn one by one; above this the timeline aggregates
SCATTER_BUDGET = 12_000  # latency points drawn; above this they are sampled (and said so)
MAX_FAULT_LABELS = 12


def fault_color(fault: str) -> str:
    return FAULT_COLORS.get(fault, FALLBACK_FAULT_COLOR)


def _s(ns: int | float) -> float:
    return round(ns / NS_PER_S, 4)


def base_layout(title: str, height: int = 320, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0, "font": {"size": 14}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 44, "b": 40},
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        "hovermode": "closest",
    }
    layout.update(extra)
    return layout


def fault_shapes(faults: list[Fault]) -> tuple[list[dict], list[dict]]:
    """Shaded rectangles (behind the data) and labels for the nemesis intervals."""
    shapes, notes = [], []
    labelled: set[str] = set()
    for i, fi in enumerate(faults):
        color = fault_color(fi.name)
        shapes.append({
            "type": "rect", "xref": "x", "yref": "paper", "layer": "below",
            "x0": _s(fi.start), "x1": _s(max(fi.end, fi.start + 1)), "y0": 0, "y1": 1,
            "fillcolor": color, "opacity": 0.13, "line": {"width": 0},
        })
        # Label every interval when few; else the first of each kind (the legend names the rest).
        if len(faults) <= MAX_FAULT_LABELS or fi.label not in labelled:
            labelled.add(fi.label)
            notes.append({
                "x": _s(fi.start), "y": 1, "xref": "x", "yref": "paper", "yanchor": "top",
                "xanchor": "left", "text": fi.label + ("" if fi.healed else " (never healed)"),
                "showarrow": False, "font": {"size": 10, "color": color},
                "bgcolor": "rgba(255,255,255,0.75)", "yshift": -14 * (i % 2),
            })
    return shapes, notes


def _with_faults(layout: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    shapes, notes = fault_shapes(faults)
    layout["shapes"] = layout.get("shapes", []) + shapes
    layout["annotations"] = layout.get("annotations", []) + notes
    return layout


def describe_value(v: Any, limit: int = 60) -> str:
    """A short readable rendering of an op value (set reads can hold thousands of elements)."""
    if isinstance(v, list) and len(v) > 6:
        head = ", ".join(describe_value(x, 12) for x in v[:3])
        return f"[{head}, … {len(v)} items]"
    text = v if isinstance(v, str) else _compact(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(v: Any) -> str:
    import json

    try:
        return json.dumps(v, separators=(",", ":"), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(v)


def op_label(op: Call) -> str:
    key = "" if op.key is None else f" {op.key}"
    val = op.shown_value
    lat = op.latency_ms
    lat_s = "no completion" if lat is None else f"{lat:.1f} ms"
    err = f" ({describe_value(op.error, 40)})" if op.error and op.type != "ok" else ""
    return f"p{op.process} {op.f}{key} {describe_value(val, 40)} → {op.type}{err}, {lat_s}"


def timeline_figure(
    ops: list[Call], faults: list[Fault], lanes: dict[Any, int], labels: list[str],
    shared_lanes: bool, end_ns: int, marks: list[dict[str, Any]],
) -> tuple[dict[str, Any], str]:
    """Operations per process over time; exact bars when small, a per-lane heatmap when large."""
    rows = max(len(labels), 1)
    height = int(min(900, max(260, 90 + 16 * rows)))
    layout = base_layout("Operations per process over time", height)
    layout["xaxis"] = {"title": {"text": "seconds since the test began"}, "zeroline": False}
    layout["yaxis"] = {
        "tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels,
        "autorange": "reversed", "zeroline": False, "showgrid": False,
    }
    data: list[dict[str, Any]] = []
    lane_note = (
        f" Rows are worker lanes: {len(lanes)} process ids share {rows} lanes, since a process "
        "retired after an info operation is replaced by a new id (hover for the id)."
        if shared_lanes else ""
    )
    if len(ops) <= EXACT_TIMELINE_LIMIT:
        end_default = end_ns
        for outcome in OUTCOMES:
            xs: list[float | None] = []
            ys: list[int | None] = []
            mx, my, mt = [], [], []
            for op in ops:
                if op.type != outcome:
                    continue
                lane = lanes[op.process]
                s, e = _s(op.time), _s(op.end if op.end is not None else end_default)
                xs += [s, e, None]
                ys += [lane, lane, None]
                mx.append(e)
                my.append(lane)
                mt.append(op_label(op))
            color = COLORS[outcome]
            data.append({
                "type": "scattergl", "mode": "lines", "x": xs, "y": ys, "name": outcome,
                "line": {"color": color, "width": 6}, "hoverinfo": "skip",
                "legendgroup": outcome,
            })
            data.append({
                "type": "scattergl", "mode": "markers", "x": mx, "y": my, "text": mt,
                "hoverinfo": "text", "marker": {"color": color, "size": 4},
                "showlegend": False, "legendgroup": outcome, "name": outcome,
            })
        how = (f"Every one of the {len(ops):,} operations is drawn as a bar from invocation to "
               "completion (an operation with no completion runs to the end of the history)."
               + lane_note)
    else:
        width = bucket_width_s(end_ns / NS_PER_S, 300)
        nb = int(math.ceil(max(end_ns, 1) / NS_PER_S / width)) + 1
        counts = [[[0, 0, 0] for _ in range(nb)] for _ in range(rows)]
        for op in ops:
            b = min(nb - 1, int(op.time / NS_PER_S / width))
            counts[lanes[op.process]][b][OUTCOMES.index(op.type)] += 1
        z: list[list[float | None]] = []
        text: list[list[str]] = []
        for r in range(rows):
            zr: list[float | None] = []
            tr: list[str] = []
            for c in counts[r]:
                if c[2]:
                    zr.append(3)
                elif c[1]:
                    zr.append(2)
                elif c[0]:
                    zr.append(1)
                else:
                    zr.append(None)
                tr.append(f"ok {c[0]} · fail {c[1]} · info {c[2]}" if any(c) else "")
            z.append(zr)
            text.append(tr)
        scale = [
            [0.0, COLORS["ok"]], [0.3333, COLORS["ok"]], [0.3334, COLORS["fail"]],
            [0.6666, COLORS["fail"]], [0.6667, COLORS["info"]], [1.0, COLORS["info"]],
        ]
        data.append({
            "type": "heatmap", "z": z, "text": text, "x0": width / 2, "dx": width, "y0": 0,
            "dy": 1, "zmin": 0.5, "zmax": 3.5, "colorscale": scale, "showscale": False,
            "hovertemplate": "%{y}, t≈%{x:.1f} s: %{text}<extra></extra>", "xgap": 0,
            "ygap": 1, "zsmooth": False, "name": "operations",
        })
        for outcome in OUTCOMES:  # legend entries for the heatmap colours
            data.append({
                "type": "scatter", "mode": "markers", "x": [None], "y": [None], "name": outcome,
                "marker": {"color": COLORS[outcome], "symbol": "square", "size": 10},
            })
        how = (f"{len(ops):,} operations are aggregated into {width:g} s cells per row (none "
               "dropped): a cell is coloured by the worst outcome invoked in it (info over fail "
               "over ok); hover for the counts, and use the operations table below for single "
               "operations." + lane_note)
    if marks:
        data.append({
            "type": "scatter", "mode": "markers", "name": "anomaly",
            "x": [m["x"] for m in marks], "y": [lanes.get(m["process"], 0) for m in marks],
            "text": [m["text"] for m in marks], "hoverinfo": "text",
            "marker": {"color": ANOMALY, "symbol": "x", "size": 11,
                       "line": {"width": 1, "color": "#ffffff"}},
        })
    return {"data": data, "layout": _with_faults(layout, faults)}, how


def latency_figure(
    ops: list[Call], faults: list[Fault], end_ns: int, marks: list[dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """Latency of every operation (sampled when huge) by outcome, with p50/p99 lines of all ok."""
    done = [op for op in ops if op.end is not None]
    by_outcome: dict[str, list[Call]] = defaultdict(list)
    for op in done:
        by_outcome[op.type].append(op)
    width = bucket_width_s(end_ns / NS_PER_S, 120)
    data: list[dict[str, Any]] = []
    sampled_note = ""
    if len(done) > SCATTER_BUDGET:
        rare = sum(len(by_outcome[o]) for o in ("fail", "info"))
        keep_rare = rare <= SCATTER_BUDGET // 2
        parts = []
        for outcome in OUTCOMES:
            items = by_outcome[outcome]
            if outcome != "ok" and keep_rare:
                continue
            budget = (SCATTER_BUDGET - (rare if keep_rare else 0)) if outcome == "ok" else (
                SCATTER_BUDGET // 4)
            by_outcome[outcome], step = _sample(items, budget, width)
            parts.append(f"for {outcome}, the slowest operation in each {width:g} s bucket plus "
                         f"every {step}th")
        shown = sum(len(v) for v in by_outcome.values())
        rare_note = "every fail and info operation, and " if keep_rare else ""
        sampled_note = (f" Showing {shown:,} of {len(done):,} completed operations: {rare_note}"
                        + "; ".join(parts) + ". The p50/p99 lines use every ok operation.")
    for outcome in OUTCOMES:
        items = by_outcome[outcome]
        if not items:
            continue
        data.append({
            "type": "scattergl", "mode": "markers", "name": outcome,
            "x": [_s(op.time) for op in items],
            "y": [round(op.latency_ms or 0.0, 3) for op in items],
            "text": [op_label(op) for op in items] if len(items) <= 3000 else None,
            "hoverinfo": "text" if len(items) <= 3000 else "x+y+name",
            "marker": {"color": COLORS[outcome], "size": 4, "opacity": 0.7},
        })
    ok_lat: dict[int, list[float]] = defaultdict(list)
    for op in done:
        if op.type == "ok":
            ok_lat[int(op.time / NS_PER_S / width)].append(op.latency_ms or 0.0)
    if ok_lat:
        buckets = sorted(ok_lat)
        for q, dash in ((0.5, "solid"), (0.99, "dot")):
            data.append({
                "type": "scatter", "mode": "lines", "name": f"ok p{int(q * 100)}",
                "x": [round((b + 0.5) * width, 3) for b in buckets],
                "y": [round(quantile(sorted(ok_lat[b]), q), 3) for b in buckets],
                "line": {"color": "#1f3b57", "width": 1.5, "dash": dash},
            })
    if marks:
        data.append({
            "type": "scatter", "mode": "markers", "name": "anomaly",
            "x": [m["x_start"] for m in marks], "y": [m["latency_ms"] for m in marks],
            "text": [m["text"] for m in marks], "hoverinfo": "text",
            "marker": {"color": ANOMALY, "symbol": "x", "size": 11},
        })
    layout = base_layout("Latency over time (by invocation time)", 340)
    layout["xaxis"] = {"title": {"text": "seconds since the test began"}, "zeroline": False}
    layout["yaxis"] = {"title": {"text": "latency (ms, log)"}, "type": "log", "dtick": 1}
    how = (f"Each point is one operation, at its invocation time. Lines: p50 and p99 of ok "
           f"latencies per {width:g} s." + sampled_note)
    return {"data": data, "layout": _with_faults(layout, faults)}, how


def _sample(items: list[Call], budget: int, width: float) -> tuple[list[Call], int]:
    """Each bucket's slowest op plus a uniform stride over the rest, within about `budget`."""
    slowest: dict[int, Call] = {}
    for op in items:
        b = int(op.time / NS_PER_S / width)
        if b not in slowest or (op.latency_ms or 0) > (slowest[b].latency_ms or 0):
            slowest[b] = op
    room = max(1, budget - len(slowest))
    step = max(1, math.ceil(len(items) / room))
    keep = {id(op) for op in slowest.values()}
    out = [op for i, op in enumerate(items) if i % step == 0 or id(op) in keep]
    return out, step


def quantiles_figure(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Grouped bars: p50/p95/p99/p99.9/max per (f, outcome)."""
    cats = [(f, o) for f in table for o in OUTCOMES if o in table[f]]
    names = [f"{f} {o}" for f, o in cats]
    data = []
    shades = {"p50": "#9ecae1", "p95": "#4292c6", "p99": "#2171b5", "p999": "#08519c",
              "max": "#08306b"}
    for q, color in shades.items():
        data.append({
            "type": "bar", "name": "p99.9" if q == "p999" else q, "x": names,
            "y": [_finite(table[f][o].get(q)) for f, o in cats], "marker": {"color": color},
        })
    layout = base_layout("Latency quantiles by operation and outcome", 320, barmode="group")
    layout["yaxis"] = {"title": {"text": "ms (log)"}, "type": "log", "dtick": 1}
    layout["xaxis"] = {"tickangle": 0, "automargin": True}
    return {"data": data, "layout": layout}


def _finite(v: Any) -> float | None:
    return round(float(v), 3) if isinstance(v, int | float) and math.isfinite(v) else None


def throughput_figure(
    ops: list[Call], faults: list[Fault], end_ns: int
) -> tuple[dict[str, Any], str]:
    """Completed operations per second, stacked by outcome."""
    width = max(1.0, bucket_width_s(end_ns / NS_PER_S, 300))
    counts: dict[str, dict[int, int]] = {o: defaultdict(int) for o in OUTCOMES}
    for op in ops:
        if op.end is not None:
            counts[op.type][int(op.end / NS_PER_S / width)] += 1
    nb = int(end_ns / NS_PER_S / width) + 1
    xs = [round((b + 0.5) * width, 3) for b in range(nb)]
    data = [
        {"type": "bar", "name": o, "x": xs, "marker": {"color": COLORS[o]},
         "y": [round(counts[o][b] / width, 3) for b in range(nb)]}
        for o in OUTCOMES
    ]
    layout = base_layout("Throughput (completions per second)", 300, barmode="stack", bargap=0)
    layout["xaxis"] = {"title": {"text": "seconds since the test began"}}
    layout["yaxis"] = {"title": {"text": "ops/s"}}
    how = f"Operations by completion time, in {width:g} s buckets, as a rate per second."
    return {"data": data, "layout": _with_faults(layout, faults)}, how


def resources_figures(
    samples: list[dict[str, Any]], faults: list[Fault]
) -> list[dict[str, Any]]:
    """CPU % and resident memory per node over time."""
    per_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        if isinstance(s.get("time"), int | float):
            per_node[str(s.get("node"))].append(s)
    figs = []
    for field, title, unit, scale in (
        ("cpu_percent", "CPU per node", "% of one core", 1.0),
        ("rss_bytes", "Resident memory per node", "MiB", 1 / 2**20),
    ):
        data = []
        for node in sorted(per_node):
            rows = sorted(per_node[node], key=lambda r: r["time"])
            data.append({
                "type": "scatter", "mode": "lines", "name": node,
                "x": [_s(r["time"]) for r in rows],
                "y": [_finite(r.get(field) * scale) if isinstance(r.get(field), int | float)
                      else None for r in rows],
            })
        layout = base_layout(title, 280)
        layout["xaxis"] = {"title": {"text": "seconds since the test began"}}
        layout["yaxis"] = {"title": {"text": unit}, "rangemode": "tozero"}
        figs.append({"data": data, "layout": _with_faults(layout, faults)})
    return figs


def histogram_figure(hist: dict[str, int], title: str, xlabel: str) -> dict[str, Any]:
    keys = sorted(hist, key=lambda k: (int(k) if str(k).isdigit() else math.inf, str(k)))
    data = [{"type": "bar", "x": [str(k) for k in keys], "y": [hist[k] for k in keys],
             "marker": {"color": "#4292c6"}, "name": "reads"}]
    layout = base_layout(title, 260, showlegend=False)
    layout["xaxis"] = {"title": {"text": xlabel}, "type": "category"}
    layout["yaxis"] = {"title": {"text": "reads"}}
    return {"data": data, "layout": layout}


def linearizability_figure(
    key: str, tail: list[dict[str, Any]], unplaceable: list[dict[str, Any]], first_no: int
) -> dict[str, Any]:
    """Porcupine-style: ops as bars by process in event order (each invocation and completion
    takes one step, so short overlapping ops stay readable); the prefix's tail numbered in its
    linearization order (from `first_no`), the operations that cannot follow it in red."""
    all_ops = tail + unplaceable
    times = [o.get("time") for o in all_ops if isinstance(o.get("time"), int | float)]
    ends = [o.get("end") for o in all_ops if isinstance(o.get("end"), int | float)]
    t_end = max(times + ends) + 1 if times else 1
    rank = {t: i for i, t in enumerate(sorted(set(times + ends + [t_end])))}
    procs = sorted({f"p{o.get('process')}" for o in all_ops},
                   key=lambda p: (0, int(p[1:])) if p[1:].lstrip("-").isdigit() else (1, p))
    data = []
    for group, ops, color, numbered in (
        ("linearizable prefix (numbered in linearization order)", tail, "#5b8db8", True),
        ("cannot follow the prefix", unplaceable, ANOMALY, False),
    ):
        ys, bases, widths, texts, hovers = [], [], [], [], []
        for i, o in enumerate(ops):
            start = o.get("time") if isinstance(o.get("time"), int | float) else t_end
            end = o.get("end") if isinstance(o.get("end"), int | float) else None
            stop = end if end is not None else t_end
            label = _lin_op_text(o)
            tag = f"#{first_no + i} " if numbered else "✗ "
            ys.append(f"p{o.get('process')}")
            bases.append(rank[start] + 0.05)
            widths.append(max(rank[stop] - rank[start], 0) + 0.9)
            texts.append(tag + label)
            open_end = " (never completed)" if end is None else ""
            hovers.append(f"{tag}{label} [{o.get('type')}]{open_end}<br>"
                          f"{start / 1e6:.3f} → {stop / 1e6:.3f} ms since the test began")
        if not ys:
            continue
        data.append({
            "type": "bar", "orientation": "h", "name": group, "y": ys, "base": bases,
            "x": widths, "text": texts, "textposition": "inside", "insidetextanchor": "start",
            "hovertext": hovers, "hoverinfo": "text", "constraintext": "none",
            "marker": {"color": color, "line": {"color": "#6b0000" if not numbered else color,
                                                "width": 2 if not numbered else 0}},
            "textfont": {"color": "#ffffff", "size": 11},
        })
    layout = base_layout(f"Key {key}: operations by process, in event order",
                         int(max(200, 90 + 36 * len(procs))), barmode="overlay", bargap=0.3)
    layout["xaxis"] = {"zeroline": False, "showticklabels": False, "showgrid": False}
    layout["legend"] = {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1,
                        "xanchor": "right"}
    layout["margin"] = {"l": 60, "r": 20, "t": 40, "b": 16}
    layout["yaxis"] = {"type": "category", "categoryorder": "array", "categoryarray": procs,
                       "autorange": "reversed"}
    layout["uniformtext"] = {"minsize": 9, "mode": "hide"}
    return {"data": data, "layout": layout}


def _lin_op_text(o: dict[str, Any]) -> str:
    f = str(o.get("f"))
    short = {"write": "w", "read": "r", "add": "add", "cas": "cas"}.get(f, f)
    return f"{short} {describe_value(o.get('value'), 24)}"
