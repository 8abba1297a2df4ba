"""render_run and render_index on hand-made and generated run directories (no cluster)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from checkers.history import Op, op_from_dict
from harness.report import render_index, render_run
from harness.report.ops import assign_lanes, latency_table, parse_history
from harness.report.render import build_context
from harness.report.synthetic import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    return {
        "valid": make_run(root / "register-partition" / "20250102T030405", 1500, seed=3),
        "invalid": make_run(root / "register-partition" / "20250103T030405", 1500, seed=4,
                            invalid=True),
        "root": root,
    }


def records(rows: list[dict]) -> list[Op]:
    """History records from hand-written rows, as `checkers.history.read_jsonl` builds them."""
    return [op_from_dict(r, "test", i + 1, i) for i, r in enumerate(rows)]


def external_refs(html: str) -> list[str]:
    """src/href attributes and CSS url() that would make the browser fetch something (outside
    plotly.js, whose source names its home page in strings; the browser test watches requests)."""
    html = re.sub(r"<script>/\*\*\n\* plotly\.js v.*?</script>", "", html, flags=re.S)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']""", html)
    refs += re.findall(r"url\(\s*['\"]?(https?:[^)'\"]+)", html)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_valid_report_has_verdict_checkers_and_no_external_reference(runs: dict) -> None:
    out = render_run(runs["valid"])
    assert out == runs["valid"] / "report.html"
    html = out.read_text(encoding="utf-8")
    results = json.loads((runs["valid"] / "results.json").read_text())
    assert "<title>VALID" in html
    for c in results["checkers"].values():
        assert c["summary"] in html
    assert external_refs(html) == []
    assert html.count("plotly.js v") == 1  # the library is inlined once
    assert "Every replica of every checked key holds the same versions." in html


def test_invalid_report_shows_each_anomaly_with_its_evidence(runs: dict) -> None:
    html = render_run(runs["invalid"]).read_text(encoding="utf-8")
    results = json.loads((runs["invalid"] / "results.json").read_text())
    assert "<title>INVALID" in html
    lost = results["checkers"]["set"]["evidence"]["lost"][0]
    # the lost write's row: element, then its op, then the faults active at its acknowledgement
    row = re.search(r"<tr><td class=\"val\"><b>(\d+)</b></td>(.*?)</tr>", html, re.S)
    assert row and row.group(1) == str(lost["element"])
    assert "partition (isolate)" in row.group(2) or lost["faults"] == []
    lin = results["checkers"]["linearizability"]["evidence"]["keys"]["k1"]
    assert lin["explanation"] in html
    assert "plot-lin-1" in html and "cannot follow the prefix" in html
    ryw = results["checkers"]["read-your-writes"]["evidence"]["violations"][0]
    assert ryw["explanation"] in html
    assert 'class="val odd">n1:4, n2:7<' in html  # the divergent replica is highlighted


def test_missing_optional_files_are_named_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", "key": "a",
         "value": 1},
        {"index": 1, "time": 5_000_000, "process": 0, "type": "ok", "f": "write", "key": "a",
         "value": 1},
    ]
    (run / "history.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    html = render_run(run).read_text(encoding="utf-8")
    assert "<title>UNKNOWN" in html
    for name in ("test.json is missing", "results.json is missing", "replicas.json is missing",
                 "resources.jsonl is missing", "No node logs",
                 "history.jsonl line 3: the last line is incomplete"):
        assert name in html, name
    assert "No checker results: results.json is missing or unreadable." in html


def test_render_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_run(tmp_path / "nope")


def test_fault_intervals_from_two_record_steps_and_heal() -> None:
    ms = 1_000_000
    nem = [
        ("start", "partition", {"kind": "isolate"}, 10), ("start", "partition", None, 12),
        ("start", "clock", {"kind": "bump"}, 20), ("start", "clock", None, 21),
        ("stop", "partition", None, 30), ("stop", "partition", None, 31),
        ("heal", None, None, 50), ("heal", None, None, 52),
        ("start", "crash", None, 60), ("start", "crash", None, 61),
    ]
    rows = [{"index": i, "time": t * ms, "process": "nemesis", "type": "info", "f": f,
             "fault": fault, "value": v} for i, (f, fault, v, t) in enumerate(nem)]
    rows.append({"index": 99, "time": 70 * ms, "process": 1, "type": "invoke", "f": "read",
                 "value": None})
    h = parse_history(records(rows))
    got = [(fi.label, fi.start // ms, fi.end // ms, fi.healed) for fi in h.faults]
    assert got == [("partition (isolate)", 10, 31, True), ("clock (bump)", 20, 52, True),
                   ("crash", 60, 70, False)]
    assert h.open_invocations == 1 and h.ops[0].type == "info" and h.ops[0].end is None


def test_lanes_reuse_rows_of_retired_processes() -> None:
    rows, t = [], 0
    for p in range(60):  # 60 processes one after another: one lane suffices
        rows += [{"index": 2 * p, "time": t, "process": p, "type": "invoke", "f": "read"},
                 {"index": 2 * p + 1, "time": t + 10, "process": p, "type": "info", "f": "read"}]
        t += 20
    lanes, labels, shared = assign_lanes(parse_history(records(rows)).ops)
    assert shared and labels == ["lane 0"] and set(lanes.values()) == {0}
    few, few_labels, few_shared = assign_lanes(parse_history(records(rows[:6])).ops)
    assert not few_shared and few_labels == ["p0", "p1", "p2"]


def test_latency_table_quantiles() -> None:
    rows = []
    for i in range(100):
        rows += [{"index": 2 * i, "time": i * 10**9, "process": 0, "type": "invoke", "f": "w"},
                 {"index": 2 * i + 1, "time": i * 10**9 + (i + 1) * 10**6, "process": 0,
                  "type": "ok", "f": "w"}]
    q = latency_table(parse_history(records(rows)).ops)["w"]["ok"]
    assert (q["count"], q["p50"], q["p95"], q["p99"], q["max"]) == (100, 50, 95, 99, 100)


def test_index_lists_runs_newest_first_coloured_and_linked(runs: dict) -> None:
    root = runs["root"]
    render_run(runs["valid"])
    (root / "broken" / "20240101T000000").mkdir(parents=True)
    (root / "broken" / "20240101T000000" / "test.json").write_text('{"name": "broken"}')
    os.symlink(runs["invalid"].relative_to(root), root / "latest")
    try:
        html = render_index(root).read_text(encoding="utf-8")
    finally:
        (root / "latest").unlink()
    order = [html.index(s) for s in ("20250103T030405", "20250102T030405", "20240101T000000")]
    assert order == sorted(order)
    assert '<tr class="v-invalid"' in html and '<tr class="v-valid"' in html
    assert 'href="register-partition/20250102T030405/report.html"' in html
    assert "no results.json" in html and ">latest<" in html
    assert html.count('data-verdict="') == 3  # the `latest` link is not listed twice
    assert all(":" not in ref for ref in external_refs(html))  # only relative links


def test_hundred_thousand_ops_render_small(tmp_path: Path) -> None:
    # how fast is benchmarks/report_render.py's job: a time limit here fails on a loaded machine
    run = make_run(tmp_path / "big", 100_000, invalid=True, seed=5)
    out = render_run(run)
    size = out.stat().st_size
    assert size <= 10 * 2**20, f"report is {size / 2**20:.1f} MiB"
    ctx = build_context(run)
    assert ctx["stats"]["ops"] == 100_000
    assert "none dropped" in ctx["hows"]["timeline"]  # aggregated, and says how
    assert "Showing" in ctx["hows"]["latency"] and "of 100,000" in ctx["hows"]["latency"]
    assert ctx["ops_encoding"] == "gzip-base64"
