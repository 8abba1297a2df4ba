"""The `/admin/stats` sampler (`harness/node_stats.py`) against real node processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from nodeproc import LocalCluster, free_port

from harness.node_stats import COUNTERS, NodeStatsSampler, stats_row


def test_stats_row_keeps_integer_counters_and_rejects_non_answers() -> None:
    row = stats_row(7, "n1", {"hints_stored": 3, "hints_pending": 0, "up": True, "x": 1.5,
                              "time": 99, "node": "n9"})
    assert row == {"time": 7, "node": "n1", "hints_stored": 3, "hints_pending": 0}
    assert stats_row(7, "n1", None) is None
    assert stats_row(7, "n1", ["hints_stored"]) is None
    assert stats_row(7, "n1", {"error": "busy"}) is None


def test_sampler_rejects_bad_intervals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        NodeStatsSampler(tmp_path / "s.jsonl", dict, time.monotonic_ns, interval_s=0)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _sample_for(sampler: NodeStatsSampler, seconds: float) -> None:
    task = asyncio.create_task(sampler.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.cluster
def test_sampler_writes_counters_skips_dead_and_paused_nodes(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    t0 = time.monotonic_ns()
    with LocalCluster(tmp_path / "cluster", size=4, probe_interval_ms=200,
                      handoff_interval_ms=200) as cluster:
        cluster.start_all()
        urls = {n: cluster.url(n) for n in cluster.ids}
        # nothing listens there: refused at connect
        urls["ghost"] = f"http://127.0.0.9:{free_port('127.0.0.9')}"
        cluster.kill9("n4")
        for i in range(30):  # keys n4 replicates are taken by a fallback, with a hint
            r = requests.put(cluster.url("n1", f"/kv/k{i}"), json={"value": i, "context": None},
                             timeout=5)
            assert r.status_code == 200, r.text
        cluster.procs["n3"].send_signal(signal.SIGSTOP)  # answers nothing, holds the connection
        try:
            sampler = NodeStatsSampler(path, lambda: urls, lambda: time.monotonic_ns() - t0,
                                       interval_s=0.3, timeout_s=0.3)
            started = time.monotonic()
            asyncio.run(_sample_for(sampler, 1.5))
            elapsed = time.monotonic() - started
            paused_until = time.monotonic_ns() - t0
        finally:
            cluster.procs["n3"].send_signal(signal.SIGCONT)
        cluster.start("n4")
        asyncio.run(_sample_for(sampler, 4.0))  # n4 is back: the hints are handed off

    rows = _rows(path)
    assert elapsed < 3.0  # a paused node costs one timeout per tick, never a stall
    assert {r["node"] for r in rows} == {"n1", "n2", "n3", "n4"}  # ghost: never answered
    first_phase = [r for r in rows if r["time"] < paused_until]
    assert first_phase and all(r["node"] in ("n1", "n2") for r in first_phase)
    for r in rows:
        assert set(COUNTERS) <= set(r)
        assert all(isinstance(r[c], int) for c in COUNTERS)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert max(r["hints_stored"] for r in rows) > 0
    assert max(r["hints_pending"] for r in rows) > 0
    assert max(r["hints_handed_off"] for r in rows) > 0
    assert sampler.skipped > 0 and sampler.samples == len(rows)


@pytest.mark.cluster
def test_harness_run_writes_stats_jsonl_and_renders_activity(tmp_path: Path) -> None:
    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))
    out = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--workload",
         "set", "--nemesis", "none", "--nodes", "3", "--time-limit", "3", "--rate", "20",
         "--quiesce-timeout", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = (out / "latest").resolve()
    rows = _rows(run_dir / "stats.jsonl")
    assert {r["node"] for r in rows} == {"n1", "n2", "n3"}
    assert len(rows) >= 3 * 3  # about once a second per node, for at least the workload
    end = max(json.loads(line)["time"]
              for line in (run_dir / "history.jsonl").read_text().splitlines())
    # on the history's clock: the samples fall within the run's time span
    assert all(0 < r["time"] <= end + 2e9 for r in rows)
    html = (run_dir / "report.html").read_text()
    assert 'id="plot-activity"' in html
