"""The quiesce waits for hinted handoff, and the handoff checker judges what it saw: real nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def run(tmp_path: Path, *extra: str) -> tuple[int, dict, dict]:
    out = tmp_path / "reports"
    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))
    # pauses of a minority for 3 s: writes meanwhile leave hints on fallbacks (and on
    # coordinators, for primaries that stopped answering after the quorum was met)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--out", str(out), "--display", "quiet",
         "--workload", "cart", "--nemesis", "pause", "--time-limit", "8",
         "--nemesis-interval", "3", "--nemesis-jitter", "0", "--rate", "60",
         "--quiesce-timeout", "8", "--seed", "11", *extra],
        capture_output=True, text=True, timeout=150, env=env)
    run_dir = (out / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    replicas = json.loads((run_dir / "replicas.json").read_text())
    return proc.returncode, results, replicas


def test_undelivered_hints_are_invalid_and_delivered_ones_valid(tmp_path: Path) -> None:
    code, results, replicas = run(tmp_path / "bug", "--bug", "no-handoff")
    hints = replicas["hints"]
    assert code == 1 and results["checkers"]["handoff"]["verdict"] == "invalid", results
    assert sum(c or 0 for c in hints["pending"].values()) > 0
    assert hints["drained_time"] is None and hints["waited_ms"] >= 7000  # the whole budget
    # the correct store, same schedule: every hint delivered within the wait, none left
    code, results, replicas = run(tmp_path / "correct")
    hints = replicas["hints"]
    assert results["checkers"]["handoff"]["verdict"] == "valid", results
    assert code == 0, results
    assert set(hints["pending"].values()) == {0} and hints["drained_time"] is not None
    assert hints["drained_time"] <= replicas["converged_time"]  # hints first, then replicas
