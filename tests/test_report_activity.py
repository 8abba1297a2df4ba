"""Section 6's node activity: stats.jsonl (plots and totals), or node logs for old runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers.faults import Fault
from harness.report import render_run
from harness.report.activity import (
    PLOTTED,
    activity_figure,
    build_activity,
    node_series,
    node_totals,
)
from harness.report.render import build_context
from harness.report.synthetic import NODES, make_run

S = 1_000_000_000


def sample(t_s: float, node: str = "n1", **values: int) -> dict:
    base = dict.fromkeys(("hints_stored", "hints_handed_off", "read_repairs_sent",
                          "aae_exchanges", "aae_keys_repaired", "tombstones_reaped",
                          "hints_pending", "tombstones_held"), 0)
    return {"time": int(t_s * S), "node": node, **base, **values}


def test_totals_add_up_over_a_restart_and_gauges_show_last_and_peak() -> None:
    samples = [sample(0, hints_handed_off=0, hints_pending=4),
               sample(1, hints_handed_off=5, hints_pending=9),
               sample(2, hints_handed_off=9, hints_pending=2),
               # silent for 4 s, then back with counters since the new process started
               sample(6, hints_handed_off=2, hints_pending=0),
               sample(7, hints_handed_off=4, hints_pending=1)]
    row = node_totals(samples, gap_ns=2.5 * S)
    assert row["hints handed off"] == 9 + 4
    assert row["hints pending last / peak"] == "1 / 9"
    assert row["silent (s)"] == 3.0  # a 4 s gap minus one normal 1 s interval
    assert row["AAE keys repaired"] == 0


def test_rates_are_per_second_and_break_where_a_node_was_silent() -> None:
    series = node_series([sample(t, "n1", hints_handed_off=v)
                          for t, v in ((0, 0), (1, 3), (2, 9), (6, 2), (7, 6), (7.5, 8))]
                         + [sample(t, "n2") for t in range(8)])
    fault = Fault("crash", 2 * S, 6 * S, {"nodes": ["n1"]})
    fig, how = activity_figure(series, [fault])
    row = 1 + [p[0] for p in PLOTTED].index("hints_handed_off")
    trace = next(d for d in fig["data"] if d["name"] == "n1" and d["yaxis"] == f"y{row}")
    # 3/s over [0,1], 6/s over [1,2], a break over the 4 s silence (the reset is not drawn),
    # then 4/s over [6,7] (a new segment starts at its interval's start) and 2 in 0.5 s
    assert trace["x"] == [0.0, 1.0, 2.0, None, 6.0, 7.0, 7.5]
    assert trace["y"] == [3.0, 3.0, 6.0, None, 4.0, 4.0, 4.0]
    pending = next(d for d in fig["data"] if d["name"] == "n1" and d["yaxis"] == "y")
    assert None in pending["x"]  # the gauge's line breaks too
    assert len(fig["data"]) == 2 * len(PLOTTED)
    assert [d["showlegend"] for d in fig["data"]].count(True) == 2  # one legend entry per node
    shapes = fig["layout"]["shapes"]
    assert [(s["x0"], s["x1"]) for s in shapes] == [(2.0, 6.0)]
    assert "stats.jsonl" in how


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("activity")
    empty = make_run(root / "empty", 400, seed=5, node_stats=False)
    (empty / "stats.jsonl").write_text("")
    return {"new": make_run(root / "new", 1500, seed=3),
            "old": make_run(root / "old", 400, seed=4, node_stats=False),
            "empty": empty}


def test_run_with_stats_renders_the_activity_plot_and_the_totals_table(runs: dict) -> None:
    run = runs["new"]
    ctx = build_context(run)
    assert ctx["activity"]["source"] == "stats"
    fig = ctx["figs"]["activity"]
    assert {d["name"] for d in fig["data"]} == set(NODES)
    assert fig["layout"]["shapes"]  # the nemesis intervals are shaded
    handed = [y for d in fig["data"] if d["yaxis"] == "y3" for y in d["y"] if y]
    assert handed and max(handed) > 0

    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    last_n2 = max((r for r in rows if r["node"] == "n2"), key=lambda r: r["time"])
    table = {r["node"]: r for r in ctx["activity"]["rows"]}
    assert table["n2"]["hints stored"] == last_n2["hints_stored"]  # n2 never restarted
    # n5 restarted halfway: its total is more than its last sample's counter
    last_n5 = max((r for r in rows if r["node"] == "n5"), key=lambda r: r["time"])
    assert table["n5"]["AAE exchanges"] > last_n5["aae_exchanges"]
    assert table["n5"]["silent (s)"] > 0

    html = render_run(run).read_text(encoding="utf-8")
    assert 'id="plot-activity"' in html
    assert "counts below are log lines" not in html
    assert "hints handed off, all nodes" in html


def test_old_run_without_stats_falls_back_to_log_lines_and_says_so(runs: dict) -> None:
    ctx = build_context(runs["old"])
    activity = ctx["activity"]
    assert activity["source"] == "logs"
    assert "activity" not in ctx["figs"]
    # the synthetic logs: 3 stored hints + 1 handoff, 1 anti-entropy, 1 read repair per node
    assert activity["rows"] == [{"node": n, "hinted handoff": 4, "anti-entropy": 1,
                                 "read repair": 1} for n in NODES]
    html = render_run(runs["old"]).read_text(encoding="utf-8")
    assert "stats.jsonl is absent" in html
    assert "counts below are log lines instead" in html
    assert 'id="plot-activity"' not in html


def test_empty_stats_file_falls_back_with_its_own_reason(runs: dict) -> None:
    ctx = build_context(runs["empty"])
    assert ctx["activity"]["source"] == "logs"
    assert "no usable sample" in ctx["activity"]["why"]


def test_no_stats_and_no_logs_says_there_is_nothing_to_show() -> None:
    view = build_activity([], False, {}, [])
    assert view["source"] is None and "absent" in view["why"]


@pytest.fixture(scope="module")
def page(runs: dict) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    report = render_run(runs["new"])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium),
                                    args=["--no-sandbox", "--headless", "--disable-gpu"])
        try:
            pg = browser.new_page(viewport={"width": 1366, "height": 900})
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(report.resolve().as_uri(), wait_until="load", timeout=60_000)
            pg.wait_for_function("document.body.dataset.opsReady", timeout=60_000)
            pg.errors = errors
            yield pg
        finally:
            browser.close()


@pytest.mark.browser
def test_activity_plot_is_drawn_in_the_browser(page: object) -> None:
    assert page.errors == []
    plot = page.locator("#plot-activity")
    assert plot.locator(".main-svg").count() > 0
    drawn = page.evaluate("document.getElementById('plot-activity').data.length")
    assert drawn == len(NODES) * len(PLOTTED)
    # one subplot per plotted counter, and shaded nemesis intervals
    assert plot.locator("g.cartesianlayer > g.subplot").count() == len(PLOTTED)
    assert plot.locator("g.shapelayer path, g.layer-below g.shapelayer path").count() > 0
    plot.scroll_into_view_if_needed()
    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.locator("#replication").screenshot(path=str(artifacts / "report-activity.png"))
