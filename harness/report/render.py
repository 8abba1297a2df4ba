"""`render_run`: one run directory -> its self-contained report.html."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from checkers.history import HistoryError
from harness.report.activity import build_activity
from harness.report.anomalies import build_checker_views
from harness.report.data import load_run, log_tail
from harness.report.figures import (
    fault_color,
    histogram_figure,
    latency_figure,
    quantiles_figure,
    resources_figures,
    throughput_figure,
    timeline_figure,
)
from harness.report.ops import (
    NS_PER_S,
    OUTCOMES,
    History,
    assign_lanes,
    latency_table,
    parse_history,
)
from harness.report.ops import sibling_histogram as history_sibling_histogram
from harness.report.optable import embed_ops
from harness.report.testinfo import test_section

TEMPLATES = Path(__file__).parent / "templates"
VERDICTS = ("valid", "invalid", "unknown", "n/a")


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = script_json
    env.filters["num"] = _num
    env.filters["vclass"] = verdict_class
    return env


def verdict_class(verdict: Any) -> str:
    """The CSS class suffix of a verdict: "n/a" has a slash, which a class selector cannot hold
    unescaped; anything not a verdict styles as unknown."""
    v = str(verdict)
    return "na" if v == "n/a" else v if v in VERDICTS else "unknown"


@cache
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def script_json(obj: Any) -> str:
    """JSON safe inside <script type="application/json"> (no closing tag can appear)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str,
                      allow_nan=False) if not isinstance(obj, str) else obj
    return Markup(text.replace("</", "<\\/"))


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"


def _verdict_of(results: dict[str, Any] | None) -> str:
    v = (results or {}).get("verdict")
    return v if v in VERDICTS else "unknown"


def _headline(verdict: str, views: list[dict[str, Any]], have_results: bool) -> str:
    if not have_results:
        return "No checker results: results.json is missing or unreadable."
    bad = [v["name"] for v in views if v["verdict"] == "invalid"]
    undecided = [v["name"] for v in views if v["verdict"] == "unknown"]
    na = [v["name"] for v in views if v["verdict"] == "n/a"]
    judged = len(views) - len(na)
    # n/a checkers judged nothing: they are named, but not counted as passed or failed
    tail = f" Not applicable (nothing to judge): {', '.join(na)}." if na else ""
    if verdict == "invalid":
        return f"{len(bad)} of {judged} checkers found anomalies: {', '.join(bad)}.{tail}"
    if verdict == "unknown":
        if not undecided and na:
            return f"No checker had anything to judge.{tail}"
        return (f"No anomaly found, but {len(undecided)} checker(s) could not decide: "
                f"{', '.join(undecided)}.{tail}")
    return f"All {judged} checkers passed.{tail}"


def _clean_nans(obj: Any) -> Any:
    """NaN/inf (empty quantiles) become null: JSON has no NaN and plotly skips nulls."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _clean_nans(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_nans(v) for v in obj]
    return obj


def build_context(run_dir: Path) -> dict[str, Any]:
    """Everything the report template needs (exposed for tests and the benchmark)."""
    t0 = time.perf_counter()
    data = load_run(run_dir)
    history_notes: list[str] = []
    try:
        h = parse_history(data.history, str(run_dir / "history.jsonl"))
    except HistoryError as e:  # the checkers' pairing policy: the page says why, without ops
        h = History()
        history_notes.append(f"{e}; the history's operations are not shown.")
    results = data.results
    checkers = (results or {}).get("checkers") if isinstance((results or {}).get("checkers"),
                                                              dict) else {}
    views, marks = build_checker_views(checkers, h.ops, h.faults)
    verdict = _verdict_of(results)
    lanes, lane_labels, shared = assign_lanes(h.ops)
    figs: dict[str, Any] = {}
    hows: dict[str, str] = {}
    if h.ops:
        figs["timeline"], hows["timeline"] = timeline_figure(
            h.ops, h.faults, lanes, lane_labels, shared, h.end_ns, marks)
        figs["latency"], hows["latency"] = latency_figure(h.ops, h.faults, h.end_ns, marks)
        figs["throughput"], hows["throughput"] = throughput_figure(h.ops, h.faults, h.end_ns)

    perf = next((c.get("evidence") for c in checkers.values() if isinstance(c, dict)
                 and isinstance(c.get("evidence"), dict)
                 and isinstance(c["evidence"].get("latency"), dict)), None)
    lat_table = perf["latency"] if perf else latency_table(h.ops)
    lat_source = "the perf checker" if perf else "this page, from the history"
    if lat_table:
        figs["quantiles"] = quantiles_figure(lat_table)

    sib_hist = next((c["evidence"]["sibling_histogram"] for c in checkers.values()
                     if isinstance(c, dict) and isinstance(c.get("evidence"), dict)
                     and isinstance(c["evidence"].get("sibling_histogram"), dict)), None)
    sib_source = "the lost-writes checker"
    if not sib_hist:
        sib_hist, sib_source = history_sibling_histogram(h.ops), "the history's ok reads"
    if sib_hist:
        figs["siblings"] = histogram_figure(sib_hist, "Siblings per read", "sibling versions")

    convergence = [
        (name, c["evidence"].get("converged_after_ms")) for name, c in checkers.items()
        if isinstance(c, dict) and isinstance(c.get("evidence"), dict)
        and "converged_after_ms" in c["evidence"]
    ]
    if data.resources:
        figs["cpu"], figs["rss"] = resources_figures(data.resources, h.faults)
    activity = build_activity(data.stats, data.present.get("stats.jsonl", False),
                              data.node_logs, h.faults)
    if activity.get("figure"):
        figs["activity"], hows["activity"] = activity.pop("figure"), activity.pop("how")
    logs = []
    for node, path in sorted(data.node_logs.items()):
        try:
            text, cut = log_tail(path)
        except OSError as e:
            text, cut = f"(unreadable: {e})", False
        logs.append({"node": node, "text": text, "truncated": cut,
                     "size": path.stat().st_size if path.exists() else 0})

    counts = Counter(op.type for op in h.ops)
    fault_kinds = sorted({(fi.name, fi.label) for fi in h.faults})
    ops_encoding, ops_payload = embed_ops(h.ops)
    notes = list(data.notes) + history_notes + activity["notes"]
    if h.open_invocations:
        notes.append(f"{h.open_invocations} operation(s) were invoked but never completed; "
                     "they are shown as info running to the end of the history.")
    test = data.test or {}
    return {
        "title": str(test.get("name") or run_dir.name),
        "run_dir": str(run_dir),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "verdict": verdict,
        "headline": _headline(verdict, views, results is not None),
        "checkers": views,
        "test": test_section(test),
        "test_json": json.dumps(test, indent=2, sort_keys=True, default=str),
        "notes": notes,
        "present": data.present,
        "stats": {
            "ops": len(h.ops), **{o: counts.get(o, 0) for o in OUTCOMES},
            "processes": len(lanes), "nemesis_ops": len(h.nemesis_ops),
            "fault_intervals": len(h.faults), "duration_s": h.end_ns / NS_PER_S,
        },
        "faults": [{"label": fi.label, "start": fi.start / NS_PER_S, "end": fi.end / NS_PER_S,
                    "healed": fi.healed, "color": fault_color(fi.name),
                    "value": json.dumps(fi.value, default=str)} for fi in h.faults],
        "fault_legend": [{"label": label, "color": fault_color(f)} for f, label in fault_kinds],
        "figs": _clean_nans(figs),
        "hows": hows,
        "lat_table": lat_table,
        "lat_source": lat_source,
        "sib_source": sib_source,
        "convergence": convergence,
        "activity": activity,
        "logs": logs,
        "ops_encoding": ops_encoding,
        "ops_payload": ops_payload,
        "elapsed_build_s": time.perf_counter() - t0,
    }


def render_run(run_dir: Path) -> Path:
    """Write `run_dir/report.html` (self-contained, no network) from the run's files; return it."""
    run_dir = Path(run_dir)
    ctx = build_context(run_dir)
    html = _env().get_template("report.html.j2").render(
        **ctx, css=asset("report.css"), js=asset("report.js"), plotly_js=plotly_js())
    out = run_dir / "report.html"
    tmp = out.with_name(f".report.html.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)  # a reader (harness serve) never sees a half-written page
    return out
