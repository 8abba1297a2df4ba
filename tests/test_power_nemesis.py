"""The power nemesis end to end: faultfs data directories (local, netns, docker), kill -9, a
power cut that drops what was not fsynced, restart; a store that acknowledges before fsync is
caught, the correct one stays valid, and nothing (mounts, processes) outlives the run.

Needs /dev/fuse, libfuse3 and mfusepy: skipped otherwise, saying which, except under CI=true.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_harness_run import (
    env,  # noqa: F401 (a fixture)
    finished_run,
    history,
    processes_using,
    run_cli,
    start_run,
    started,  # noqa: F401 (a fixture)
    wait_for,
)
from test_platform_support import build_node_image, skip_or_fail

from harness.faultfs.mount import unavailable

pytestmark = pytest.mark.cluster

N1 = ["--workload", "set", "--nemesis", "power", "--n", "1", "--r", "1", "--w", "1",
      "--time-limit", "8", "--nemesis-interval", "2.5", "--rate", "60"]


@pytest.fixture(autouse=True)
def _needs_fuse() -> None:
    why = unavailable()
    if why:
        skip_or_fail(f"the power nemesis cannot mount faultfs here: {why}")


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if prefix in line]


@pytest.mark.parametrize(("platform", "fsync", "code"),
                         [("local", "always", 0), ("local", "none", 1), ("netns", "none", 1),
                          ("docker", "none", 1)])
def test_power_cut_catches_acknowledged_but_not_durable(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                                         platform: str, fsync: str,
                                                         code: int) -> None:
    if platform == "docker":
        build_node_image()  # the image of this tree's node
    out = tmp_path / "reports"
    rc, run_dir, output = finished_run(out, [*N1, "--fsync", fsync, "--platform", platform],
                                       env)
    assert rc == code, output
    test = json.loads((run_dir / "test.json").read_text())
    assert "faultfs" in test["mechanisms"]["power"]
    results = json.loads((run_dir / "results.json").read_text())
    lost = results["checkers"]["set"]["evidence"]["lost_count"]
    if fsync == "always":
        assert results["verdict"] == "valid" and lost == 0
    else:
        assert results["checkers"]["set"]["verdict"] == "invalid" and lost > 0
    cuts = [o for o in history(run_dir) if o["process"] == "nemesis" and o["f"] == "start"
            and "dropped" in o["value"]]
    assert cuts and all("errors" not in o["value"] for o in cuts)
    assert set(cuts[0]["value"]["dropped"]) == set(cuts[0]["value"]["nodes"])
    assert not mounts_under(run_dir), "a faultfs mount outlived its run"
    assert not processes_using(run_dir)
    assert not list((tmp_path / "state" / "sessions").glob("*.json"))


def test_power_is_refused_where_it_cannot_run(tmp_path: Path, env: dict[str, str]) -> None:  # noqa: F811
    etcd = run_cli(["run", "--store", "etcd", "--workload", "cas-register", "--nemesis", "power",
                    "--out", str(tmp_path)], env)
    assert etcd.returncode == 3 and "power nemesis" in etcd.stderr + etcd.stdout


def test_cleanup_after_kill_9_unmounts(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                       started: list) -> None:  # noqa: F811
    out = tmp_path / "reports"
    proc = start_run(out, env, ["--nemesis", "power", "--time-limit", "40",
                                "--nemesis-interval", "2", "--seed", "5"])
    started.append(proc)
    hist = lambda: (out / "latest" / "history.jsonl")  # noqa: E731
    wait_for(lambda: hist().exists() and '"dropped"' in hist().read_text(), 40,
             "a power cut")
    run_dir = (out / "latest").resolve()
    proc.kill()  # kill -9: no teardown at all
    proc.wait(timeout=10)
    assert len(mounts_under(run_dir)) == 3
    cleaned = run_cli(["cleanup"], env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "faultfs mount" in cleaned.stdout
    wait_for(lambda: not processes_using(run_dir), 10, "the nodes and faultfs to go")
    assert not mounts_under(run_dir)
    again = run_cli(["cleanup"], env)
    assert again.returncode == 0 and "nothing to clean up" in again.stdout
