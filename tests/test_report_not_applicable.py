"""n/a checkers in report.html and reports/index.html: a grey badge, not counted as passed."""

from __future__ import annotations

import json
from pathlib import Path

from harness.report import render_index, render_run
from harness.report.render import verdict_class

ROWS = [
    {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1},
    {"index": 1, "time": 5_000_000, "process": 0, "type": "ok", "f": "write", "key": "a",
     "value": 1},
]
RESULTS = {"verdict": "valid", "checkers": {
    "perf": {"verdict": "valid", "summary": "1 operation completed.", "evidence": {}},
    "convergence": {"verdict": "n/a", "summary": "There is no replicas.json, so convergence was "
                    "not checked.", "evidence": {"reason": "no replicas.json"}},
}}


def make(run: Path) -> Path:
    run.mkdir(parents=True)
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (run / "results.json").write_text(json.dumps(RESULTS))
    (run / "test.json").write_text(json.dumps({"name": "bare", "workload": "register"}))
    return run


def test_report_shows_not_applicable_in_grey_and_names_it(tmp_path: Path) -> None:
    html = render_run(make(tmp_path / "t" / "20250101T000000")).read_text(encoding="utf-8")
    assert "<title>VALID" in html
    assert '<span class="badge v-na"' in html and ">n/a</span>" in html
    assert 'class="card v-na"' in html
    assert "All 1 checkers passed. Not applicable (nothing to judge): convergence." in html
    css = html[html.index("<style>"):html.index("</style>")]
    assert ".badge.v-na" in css


def test_index_lists_not_applicable_checkers_apart_from_failing(tmp_path: Path) -> None:
    make(tmp_path / "t" / "20250101T000000")
    html = render_index(tmp_path).read_text(encoding="utf-8")
    assert '<tr class="v-valid"' in html
    assert 'pill v-na' in html and "</span> convergence</div>" in html
    assert "<b>convergence</b>" not in html  # n/a is not "what failed"


def test_verdict_class() -> None:
    assert [verdict_class(v) for v in ("valid", "n/a", "maybe", None)] == [
        "valid", "na", "unknown", "unknown"]
