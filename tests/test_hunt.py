"""`harness hunt` finds and shrinks seeded bugs of the zoo on the simulator, and its replay
command reproduces the failure."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.hunt_cmd import parse_duration
from harness.schedule_file import faults_of, load_schedule

ROOT = Path(__file__).resolve().parents[1]


def harness(*args: str, cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("bug", ["lww", "no-handoff", "reap-early"])
def test_hunt_finds_and_shrinks_a_seeded_bug(bug: str, tmp_path: Path) -> None:
    # a fixed search seed: the same scenarios are tried in the same order whatever the load,
    # so only the wall time varies; the budgets are generous for a loaded machine
    done = harness("hunt", "--platform", "sim", "--bug", bug, "--seed", "1",
                   "--budget", "100s", "--shrink-budget", "20s", "--out", str(tmp_path),
                   cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    schedule = Path(re.search(r"^schedule: (.+)$", done.stdout, re.M).group(1))
    actions, nodes = load_schedule(schedule)
    assert 1 <= faults_of(actions) <= 3 and nodes == ["n1", "n2", "n3", "n4", "n5"]
    assert "(verdict invalid)" in done.stdout

    replay = shlex.split(re.search(r"^replay: (.+)$", done.stdout, re.M).group(1))
    assert replay[:4] == ["harness", "run", "--platform", "sim"]
    assert "--schedule" in replay and "--seed" in replay
    again = harness(*replay[1:], "--display", "quiet", cwd=tmp_path, timeout=200)
    assert again.returncode == 1, again.stdout + again.stderr
    test = json.loads((tmp_path / "latest" / "test.json").read_text())
    assert test["simulated"]["schedule_file"] == str(schedule)
    assert bug in test["settings"]["cluster"]["bugs"]


def test_durations() -> None:
    assert parse_duration("60s") == 60 and parse_duration("2m") == 120
    assert parse_duration("90") == 90


def test_a_clean_hunt_exits_0(tmp_path: Path) -> None:
    done = harness("hunt", "--budget", "3s", "--seed", "3", "--max-time-limit", "3",
                   "--out", str(tmp_path), cwd=tmp_path, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no failure in" in done.stdout


def test_scenario_schedule_round_trip(tmp_path: Path) -> None:
    from harness.hunt import Scenario
    from harness.schedule_file import named_nodes, save_schedule

    scn = Scenario(seed=1, time_limit=5, rate=10, concurrency=2, keys=1, faults=[
        (2.0, 4.0, "crash", {"nodes": ["n2"]}),
        (0.5, 3.0, "partition", {"kind": "one-way", "grudge": {"n1": ["n3"]}})])
    actions = scn.actions()
    assert [(a.at, a.f, a.fault) for a in actions] == [
        (0.5, "start", "partition"), (2.0, "start", "crash"), (3.0, "stop", "partition"),
        (4.0, "stop", "crash"), (5.0, "heal", None)]
    assert scn.kinds() == ["partition", "crash"]
    path = tmp_path / "s.json"
    save_schedule(path, actions, ["n1", "n2", "n3"])
    loaded, nodes = load_schedule(path)
    assert loaded == actions and nodes == ["n1", "n2", "n3"]
    assert named_nodes(actions) == ["n1", "n2", "n3"] and faults_of(loaded) == 2


def test_a_schedule_naming_unknown_nodes_is_refused(tmp_path: Path) -> None:
    from harness.hunt import Scenario
    from harness.schedule_file import save_schedule

    scn = Scenario(seed=1, time_limit=3, rate=10, concurrency=1, keys=1,
                   faults=[(0.5, 1.0, "pause", {"nodes": ["n9"]})])
    path = tmp_path / "s.json"
    save_schedule(path, scn.actions(), ["n9"])
    done = harness("run", "--platform", "sim", "--schedule", str(path), "--nodes", "3",
                   "--out", str(tmp_path), cwd=tmp_path, timeout=60)
    assert done.returncode == 3 and "n9" in done.stdout + done.stderr
