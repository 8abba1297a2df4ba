"""The reports in headless Chromium: no console error, no network request, the verdict, every
checker's sentence and the anomalies on screen, and a 100,000-op report that stays interactive.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report import render_run
from harness.report.synthetic import make_run

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Visit:
    """A page load with every console error and request recorded."""

    def __init__(self, browser: object, report: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1366, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = report.resolve().as_uri()
        started = time.monotonic()
        self.page.goto(self.url, wait_until="load", timeout=60_000)
        self.page.wait_for_function("document.body.dataset.opsReady", timeout=60_000)
        self.ready_s = time.monotonic() - started

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.requests == [self.url]  # nothing but the file itself
        assert self.page.evaluate("document.body.dataset.opsReady") == "1"
        # every plot was drawn by plotly (an SVG per plot)
        plots = self.page.locator("div.plot").count()
        assert plots > 0
        assert self.page.locator("div.plot .main-svg").count() >= plots


def checker_sentences(run: Path) -> list[str]:
    results = json.loads((run / "results.json").read_text())
    return [c["summary"] for c in results["checkers"].values()]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    out = {
        "valid": make_run(root / "valid", 1500, seed=11),
        "invalid": make_run(root / "invalid", 1500, seed=12, invalid=True),
        "big": make_run(root / "big", 100_000, seed=13, invalid=True),
    }
    for run in out.values():
        render_run(run)
    ARTIFACTS.mkdir(exist_ok=True)
    return out


def test_valid_report_in_chromium(browser: object, reports: dict[str, Path]) -> None:
    v = Visit(browser, reports["valid"] / "report.html")
    try:
        v.check_clean()
        page = v.page
        assert page.locator("header .verdict-word").inner_text() == "VALID"
        text = page.locator("body").inner_text()
        for sentence in checker_sentences(reports["valid"]):
            assert sentence in text
        assert "No acknowledged write was lost." in text
        page.screenshot(path=str(ARTIFACTS / "report-valid.png"), full_page=True)
    finally:
        v.page.close()


def test_invalid_report_in_chromium_shows_the_anomalies(
    browser: object, reports: dict[str, Path]
) -> None:
    v = Visit(browser, reports["invalid"] / "report.html")
    try:
        v.check_clean()
        page = v.page
        assert page.locator("header .verdict-word").inner_text() == "INVALID"
        text = page.locator("body").inner_text()
        for sentence in checker_sentences(reports["invalid"]):
            assert sentence in text
        results = json.loads((reports["invalid"] / "results.json").read_text())
        lost = results["checkers"]["set"]["evidence"]["lost"][0]
        row = page.locator("table.lost tbody tr").first
        assert row.locator("td").first.inner_text() == str(lost["element"])
        assert ", ".join(lost["faults"]) in row.inner_text()
        # the counterexample diagram: prefix bars and the red unplaceable read
        lin = page.locator("#plot-lin-1")
        assert lin.locator("text", has_text="✗ r").count() >= 1
        assert lin.locator("text", has_text="#").count() >= 3
        assert page.locator("table.ryw tr.pair-start").count() == 1
        assert page.locator("table.conv td.odd").inner_text() == "n1:4, n2:7"
        # anomalies are marked on the timeline
        assert page.evaluate("""document.getElementById('plot-timeline').data
            .some(t => t.name === 'anomaly' && t.x.length >= 3)""")
        page.screenshot(path=str(ARTIFACTS / "report-invalid.png"), full_page=True)
        page.locator("#anomalies").screenshot(path=str(ARTIFACTS / "report-invalid-anomalies.png"))
    finally:
        v.page.close()


def test_hundred_thousand_op_report_is_interactive(
    browser: object, reports: dict[str, Path]
) -> None:
    report = reports["big"] / "report.html"
    assert report.stat().st_size <= 10 * 2**20
    v = Visit(browser, report)
    try:
        v.check_clean()
        page = v.page
        assert v.ready_s < 30, f"the page took {v.ready_s:.1f} s to become usable"
        status = page.locator("#ops-status")
        assert "of 100,000" in status.inner_text()
        infos = sum(1 for line in (reports["big"] / "history.jsonl").open()
                    if '"type":"info"' in line and '"nemesis"' not in line)
        started = time.monotonic()
        page.select_option("#ops-filters select[name=y]", "info")
        page.wait_for_function(
            f"document.getElementById('ops-status').textContent.includes('{infos:,} matching')",
            timeout=10_000)
        assert time.monotonic() - started < 5
        assert page.locator("#ops-body tr.o-info").count() == min(100, infos)
        page.click("#ops-filters button[type=reset]")
        page.wait_for_function("document.getElementById('ops-status').textContent"
                               ".includes('100,000 matching')", timeout=10_000)
        page.click(".pager button[data-page=last]")
        assert "page 1000 of 1000" in status.inner_text()
        # clicking the timeline jumps the table to that moment
        box = page.locator("#plot-timeline .nsewdrag").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + 10)
        page.wait_for_selector("#ops-body tr.hit", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "report-100k.png"), full_page=False)
    finally:
        v.page.close()
