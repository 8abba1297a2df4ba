"""`harness suite` and `harness run --bug/--node-setting` end to end: real nodes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "harness"]
SHORT = """
[defaults]
time_limit = 3
quiesce_timeout = 5
rate = 50
workload = "set"
timeout = 120
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))


def harness(args: list[str], env: dict[str, str], cwd: Path,
            timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def test_bad_suite_exits_3_naming_the_problem(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[test]]\nname = 'x'\nworkload = 'cart'\nexpect = { set = 'maybe' }\n")
    p = harness(["suite", str(path)], env, tmp_path, timeout=60)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "test 'x'" in p.stderr and "expect.set" in p.stderr
    p = harness(["suite", str(tmp_path / "missing.toml")], env, tmp_path, timeout=60)
    assert p.returncode == 3 and "cannot read" in p.stderr


def test_dry_run_prints_the_runs(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SHORT + "[[test]]\nname = 'one'\nbugs = ['lww']\nexpect = { set = 'invalid' }"
                    "\n[[test]]\nname = 'two'\nbugs = ['lww']\nexpect = { set = 'invalid' }\n"
                    "control = false\ncontrol_reason = 'shown, not hidden'\n")
    p = harness(["suite", str(path), "--dry-run", "--out", "o"], env, tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("one: harness run --workload set")
    assert "--bug lww" in p.stdout and "--out o/one" in p.stdout
    assert not (tmp_path / "o").exists()
    # the bug test's control: the same run without --bug; the opt-out says why
    lines = p.stdout.splitlines()
    control = next(line for line in lines if line.startswith("one-control: harness run"))
    assert "--bug" not in control and "--out o/one-control" in control
    assert "# no control run: shown, not hidden" in p.stdout
    assert not any(line.startswith("two-control") for line in lines)
    p = harness(["suite", str(path), "--dry-run", "--only", "*-control"], env, tmp_path,
                timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("one-control: "), p.stdout + p.stderr


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_wrong_expectation_fails_the_suite_and_is_named(tmp_path: Path,
                                                        env: dict[str, str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SHORT + """
[[test]]
name = "correct-store-valid"
expect = { set = "valid" }

[[test]]
name = "expects-unknown"
expect = { set = "unknown", convergence = "valid" }
""")
    out, junit = tmp_path / "reports", tmp_path / "suite.xml"
    p = harness(["suite", str(path), "--out", str(out), "--junit", str(junit)], env, tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "expects-unknown" in p.stdout.splitlines()[-1]
    assert "correct-store-valid" not in p.stdout.splitlines()[-1]

    summary = json.loads((out / "suite.json").read_text())
    by_name = {t["name"]: t for t in summary["tests"]}
    assert by_name["correct-store-valid"]["passed"] is True
    wrong = by_name["expects-unknown"]
    assert wrong["passed"] is False and wrong["mismatches"] == ["set"]
    assert wrong["actual"] == {"set": "valid", "convergence": "valid"}
    # the run directory is real and holds the verdicts the suite compared
    results = json.loads((Path(wrong["run_dir"]) / "results.json").read_text())
    assert results["checkers"]["set"]["verdict"] == "valid"

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"correct-store-valid", "expects-unknown"}
    assert cases["correct-store-valid"].find("failure") is None
    failure = cases["expects-unknown"].find("failure")
    assert failure is not None
    assert failure.get("message") == "set expected unknown but was valid"

    # the same suite with only the right expectation passes
    p = harness(["suite", str(path), "--out", str(out), "--only", "correct-*"], env, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_run_passes_bugs_and_node_settings_to_the_nodes(tmp_path: Path,
                                                        env: dict[str, str]) -> None:
    out = tmp_path / "reports"
    p = harness(["run", "--workload", "set", "--time-limit", "1", "--quiesce-timeout", "2",
                 "--node-setting", "read_repair=true", "--node-setting", "aae_interval_ms=700",
                 "--bug", "no-such-bug", "--out", str(out), "--display", "quiet"], env, tmp_path)
    # the node itself rejects an unknown bug: the run fails at setup and says why
    assert p.returncode == 3, p.stdout + p.stderr
    assert "no-such-bug" in p.stderr
    run_dir = (out / "latest").resolve()
    cluster = tomllib.loads((run_dir / "nodes" / "cluster.toml").read_text())["cluster"]
    assert cluster["bugs"] == ["no-such-bug"]
    assert cluster["read_repair"] is True and cluster["aae_interval_ms"] == 700
    test = json.loads((run_dir / "test.json").read_text())
    assert test["settings"]["cluster"]["bugs"] == ["no-such-bug"]
    # what the flags said wins over the test timers the harness gives the reference store,
    # and test.json records both (the checkers read the tombstone grace there)
    assert test["settings"]["cluster"]["node_settings"] == {
        "read_repair": True, "aae_interval_ms": 700, "tombstone_grace_ms": 3000,
        "reap_interval_ms": 1000}
