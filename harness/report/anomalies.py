"""Checker results -> what the page shows: per checker, its known evidence as tables and diagrams,
and any evidence key it does not know as a collapsible JSON block.

A checker's kind is recognised by the shape of its evidence (docs: the checkers' evidence shapes),
not by its name, so renamed or additional checkers still render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from checkers.faults import Fault
from checkers.history import Call
from harness.report.figures import describe_value, linearizability_figure
from harness.report.ops import NS_PER_MS, NS_PER_S, faults_at

KNOWN_KEYS = {
    "sibling-preservation": {"lost_writes", "lost_count", "present_count", "superseded_count",
                             "unchecked_count", "unresolved_count", "acknowledged_count",
                             "final_reads", "writes_with_read", "writes_without_read"},
    "lost-writes": {"lost", "stable_count", "lost_count", "never_read", "stale_count",
                    "latencies", "sibling_histogram"},
    "read-your-writes": {"violations", "count", "strict"},
    "linearizability": {"keys", "checked_keys", "reason", "total_keys", "invalid_keys", "model",
                        "unchecked_keys"},
    "convergence": {"divergent", "converged_after_ms", "keys_checked"},
    "phantoms": {"phantoms", "count", "reads_checked"},
    "perf": {"latency", "throughput", "availability"},
}
MAX_ROWS = 500  # rows per anomaly table; the rest are counted on the page and are in results.json
MAX_LIN_DIAGRAMS = 12
LIN_PREFIX_SHOWN = 16
MAX_JSON_CHARS = 200_000


def checker_kind(evidence: Any) -> str:
    if not isinstance(evidence, dict):
        return "generic"
    # before "lost-writes": this evidence also has a `lost_count`
    if "lost_writes" in evidence or "writes_with_read" in evidence:
        return "sibling-preservation"
    if "lost" in evidence or "lost_count" in evidence:
        return "lost-writes"
    if "violations" in evidence:
        return "read-your-writes"
    if "phantoms" in evidence:
        return "phantoms"
    if isinstance(evidence.get("keys"), dict):
        return "linearizability"
    if "divergent" in evidence or "converged_after_ms" in evidence:
        return "convergence"
    if "latency" in evidence or "availability" in evidence:
        return "perf"
    return "generic"


@dataclass
class OpIndex:
    """Finds the report's Call for an operation quoted in evidence (by process and a time)."""

    by_end: dict[tuple[str, int], Call] = field(default_factory=dict)
    by_start: dict[tuple[str, int], Call] = field(default_factory=dict)

    @classmethod
    def build(cls, ops: list[Call]) -> OpIndex:
        idx = cls()
        for op in ops:
            idx.by_start[(str(op.process), op.time)] = op
            if op.end is not None:
                idx.by_end[(str(op.process), op.end)] = op
        return idx

    def find(self, quoted: Any) -> Call | None:
        """A call (`time` = invocation, `end` = completion) or a single record (`time` is when it
        was written: the completion of an ok op, or an invocation)."""
        if not isinstance(quoted, dict) or not isinstance(quoted.get("time"), int | float):
            return None
        key = (str(quoted.get("process")), int(quoted["time"]))
        if "end" in quoted:
            return self.by_start.get(key)
        if quoted.get("type") == "invoke":
            return self.by_start.get(key)
        return self.by_end.get(key) or self.by_start.get(key)


def op_row(quoted: Any, index: OpIndex) -> dict[str, Any]:
    """A table row for an operation quoted in evidence, completed from the history when found."""
    q = quoted if isinstance(quoted, dict) else {"value": quoted}
    op = index.find(q)
    start = op.time if op else q.get("time")
    end = op.end if op else q.get("end")
    why = q.get("why")
    value = q.get("value", op.shown_value if op else None)
    return {
        "process": q.get("process", op.process if op else None),
        "f": q.get("f", op.f if op else None),
        "key": q.get("key", op.key if op else None),
        "value": describe_value(value, 80),
        "node": q.get("node", op.node if op else None),
        "type": q.get("type", op.type if op else None),
        "start_s": _fmt_s(start),
        "end_s": _fmt_s(end),
        "latency_ms": (f"{(end - start) / NS_PER_MS:.1f}"
                       if isinstance(start, int | float) and isinstance(end, int | float) else ""),
        "why": str(why) if why else "",
        "op": op,
    }


def _fmt_s(ns: Any) -> str:
    return f"{ns / NS_PER_S:.3f}" if isinstance(ns, int | float) else ""


def extra_json(evidence: Any, kind: str) -> str | None:
    """Evidence keys this page has no special view for, as indented JSON (bounded, said so)."""
    if not isinstance(evidence, dict):
        rest: Any = evidence
    else:
        rest = {k: v for k, v in evidence.items() if k not in KNOWN_KEYS.get(kind, set())}
        if not rest:
            return None
    text = json.dumps(rest, indent=2, sort_keys=True, default=str)
    if len(text) > MAX_JSON_CHARS:
        text = (text[:MAX_JSON_CHARS] + f"\n… {len(text) - MAX_JSON_CHARS:,} more characters "
                "not shown here; results.json has them all.")
    return text


def build_checker_views(
    checkers: dict[str, Any], ops: list[Call], faults: list[Fault]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per checker, the view model for the template; and the anomaly marks for the plots."""
    index = OpIndex.build(ops)
    views, marks = [], []
    for name, result in checkers.items():
        result = result if isinstance(result, dict) else {}
        evidence = result.get("evidence", {})
        kind = checker_kind(evidence)
        view: dict[str, Any] = {
            "name": name, "kind": kind, "verdict": str(result.get("verdict", "unknown")),
            "summary": str(result.get("summary") or ""), "extra_json": extra_json(evidence, kind),
        }
        builder = _BUILDERS.get(kind)
        if builder is not None:
            builder(view, evidence, index, faults, marks)
        views.append(view)
    return views, marks


def _mark(marks: list[dict[str, Any]], row: dict[str, Any], text: str) -> None:
    op: Call | None = row["op"]
    if op is None:
        return
    end = op.end if op.end is not None else op.time
    marks.append({"x": round(end / NS_PER_S, 4), "x_start": round(op.time / NS_PER_S, 4),
                  "latency_ms": round(op.latency_ms or 0.0, 3) or 0.001,
                  "process": op.process, "text": text})


def _lost(view: dict, ev: dict, index: OpIndex, faults: list[Fault], marks: list) -> None:
    lost = ev.get("lost") or []
    rows = []
    for i, item in enumerate(lost):
        item = item if isinstance(item, dict) else {"element": item}
        row = op_row(item.get("add"), index)
        op = row["op"]
        active = item.get("faults")
        if active is None and op is not None:  # evidence without faults: derive from the history
            active = faults_at(faults, op.end if op.end is not None else op.time)
        row.update(element=describe_value(item.get("element"), 60),
                   faults=", ".join(map(str, active or [])) or "none")
        _mark(marks, row, f"lost write {row['element']} (acknowledged; faults: {row['faults']})")
        if i < MAX_ROWS:
            rows.append(row)
    view["lost_rows"] = rows
    view["lost_total"] = len(lost)
    never = ev.get("never_read") or []
    view["never_read"] = describe_value(never, 400) if never else ""
    view["never_read_count"] = len(never) if isinstance(never, list) else 0
    view["stats"] = [(label, ev[k]) for k, label in (
        ("stable_count", "acknowledged and read in the final reads"),
        ("lost_count", "acknowledged but missing from the final reads (lost)"),
        ("stale_count", "read late (stale)"),
    ) if k in ev]
    lat = ev.get("latencies")
    view["latencies_json"] = json.dumps(lat, indent=2, default=str) if lat else ""


def _preservation(view: dict, ev: dict, index: OpIndex, faults: list[Fault],
                  marks: list) -> None:
    """Per lost register write: the write, the final reads that lack it, the writes of what
    survived instead, and a failed write that read it (which does not count)."""
    lost = ev.get("lost_writes") or []
    rows = []
    for item in lost[:MAX_ROWS]:
        item = item if isinstance(item, dict) else {}
        w = _with_read(item.get("write"), index)
        value = describe_value(item.get("value"), 60)
        _mark(marks, w, f"lost write {value} (acknowledged; in no final read, superseded by "
                        "nothing)")
        reads = [op_row(r, index) for r in item.get("final_reads") or []]
        more = item.get("final_read_count")
        rows.append({
            "value": value, "write": w, "reads": reads,
            "more_reads": more - len(reads) if isinstance(more, int) else 0,
            "survivors": [_with_read(o, index) for o in item.get("survivors") or []],
            "failed": op_row(item["failed_based_on"], index)
            if isinstance(item.get("failed_based_on"), dict) else None,
            "why": str(item.get("why", "")),
        })
    view["pres_rows"] = rows
    total = ev.get("lost_count")
    view["pres_total"] = total if isinstance(total, int) else len(lost)
    view["stats"] = [(label, ev[k]) for k, label in (
        ("acknowledged_count", "acknowledged writes"),
        ("present_count", "in the final reads"),
        ("superseded_count", "superseded by a write or delete that read them"),
        ("lost_count", "lost"),
        ("unresolved_count", "unresolved (only a write with no recorded read could explain)"),
        ("unchecked_count", "no final read after them"),
        ("writes_without_read", "writes/deletes that recorded no read"),
    ) if k in ev]


def _with_read(quoted: Any, index: OpIndex) -> dict[str, Any]:
    """An op row plus what the write's own read returned (its causal past, as recorded)."""
    row = op_row(quoted, index)
    read = quoted.get("read") if isinstance(quoted, dict) else None
    row["read"] = describe_value(read, 60) if read is not None else "not recorded"
    return row


def _ryw(view: dict, ev: dict, index: OpIndex, faults: list[Fault], marks: list) -> None:
    violations = ev.get("violations") or []
    rows = []
    for i, v in enumerate(violations):
        v = v if isinstance(v, dict) else {}
        w, r = op_row(v.get("write"), index), op_row(v.get("read"), index)
        _mark(marks, r, f"read-your-writes violation: read {r['value']} after write {w['value']}")
        if i < MAX_ROWS:
            rows.append({"write": w, "read": r, "explanation": str(v.get("explanation", ""))})
    view["ryw_rows"] = rows
    view["ryw_total"] = len(violations)
    view["stats"] = [(k, ev[k]) for k in ("count", "strict") if k in ev]


def _lin(view: dict, ev: dict, index: OpIndex, faults: list[Fault], marks: list) -> None:
    keys = ev.get("keys") or {}
    bad = [(k, v) for k, v in keys.items() if isinstance(v, dict) and v.get("verdict") != "valid"]
    views = []
    for i, (key, kv) in enumerate(bad):
        prefix = [o for o in kv.get("prefix") or [] if isinstance(o, dict)]
        unplaceable = [o for o in kv.get("unplaceable") or [] if isinstance(o, dict)]
        for o in unplaceable:
            _mark(marks, op_row(o, index),
                  f"key {key}: {describe_value(o.get('value'), 30)} cannot be linearized")
        prefix_len = kv.get("prefix_length")
        prefix_len = prefix_len if isinstance(prefix_len, int) else len(prefix)
        tail = prefix[-LIN_PREFIX_SHOWN:]
        item = {"key": key, "verdict": kv.get("verdict"), "explanation": kv.get("explanation", ""),
                "prefix_len": prefix_len, "prefix_shown": len(tail),
                "final_state": describe_value(kv["final_state"], 120)
                if "final_state" in kv else "",
                "must_complete": op_row(kv["must_complete"], index)
                if isinstance(kv.get("must_complete"), dict) else None,
                "unplaceable": [op_row(o, index) for o in unplaceable[:MAX_ROWS]],
                "figure": None}
        if i < MAX_LIN_DIAGRAMS and (tail or unplaceable):
            item["figure"] = linearizability_figure(
                str(key), tail, unplaceable, prefix_len - len(tail) + 1)
        views.append(item)
    view["lin_keys"] = views
    view["lin_diagrams_limit"] = MAX_LIN_DIAGRAMS
    view["stats"] = [(label, ev[k]) for k, label in (
        ("model", "model"), ("total_keys", "keys"), ("checked_keys", "keys decided"),
        ("unchecked_keys", "keys not reached"), ("reason", "reason")) if k in ev]
    view["lin_valid_keys"] = sum(1 for v in keys.values()
                                 if isinstance(v, dict) and v.get("verdict") == "valid")


def _conv(view: dict, ev: dict, index: OpIndex, faults: list[Fault], marks: list) -> None:
    divergent = ev.get("divergent") or {}
    rows = []
    nodes = sorted({n for per in divergent.values() if isinstance(per, dict) for n in per})
    for key, per in list(divergent.items())[:MAX_ROWS]:
        per = per if isinstance(per, dict) else {}
        sets = {n: tuple(sorted(map(str, per.get(n) or []))) for n in per}
        common = max(set(sets.values()), key=lambda s: list(sets.values()).count(s), default=())
        cells = []
        for n in nodes:
            if n not in per:
                cells.append({"text": "—", "odd": False})
            else:
                cells.append({"text": ", ".join(sets[n]) or "(nothing)",
                              "odd": sets[n] != common})
        rows.append({"key": key, "cells": cells})
    view["conv_nodes"] = nodes
    view["conv_rows"] = rows
    view["conv_total"] = len(divergent)
    if "converged_after_ms" in ev and ev["converged_after_ms"] is None:
        ev = dict(ev, converged_after_ms="did not converge")
    view["stats"] = [(label, ev[k]) for k, label in (
        ("converged_after_ms", "converged after (ms, from the heal)"),
        ("keys_checked", "keys checked"),
    ) if k in ev]


def _perf(view: dict, ev: dict, index: OpIndex, faults: list[Fault], marks: list) -> None:
    avail = ev.get("availability") or {}
    view["availability"] = [
        (k, f"{v * 100:.1f}%" if isinstance(v, int | float) else str(v)) for k, v in avail.items()
    ]


def _phantoms(view: dict, ev: dict, index: OpIndex, faults: list[Fault],
              marks: list) -> None:
    phantoms = ev.get("phantoms") or []
    rows = []
    for i, p in enumerate(phantoms):
        p = p if isinstance(p, dict) else {}
        row = op_row(p.get("read"), index)
        row.update(phantom=describe_value(p.get("value"), 80), why=str(p.get("why", "")))
        _mark(marks, row, f"phantom read of {row['phantom']}")
        if i < MAX_ROWS:
            rows.append(row)
    view["phantom_rows"] = rows
    view["phantom_total"] = len(phantoms)
    view["stats"] = [(k, ev[k]) for k in ("count", "reads_checked") if k in ev]


_BUILDERS = {
    "sibling-preservation": _preservation,
    "phantoms": _phantoms,
    "lost-writes": _lost,
    "read-your-writes": _ryw,
    "linearizability": _lin,
    "convergence": _conv,
    "perf": _perf,
}
