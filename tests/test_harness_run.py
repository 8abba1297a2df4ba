"""`harness run` and `harness cluster` end to end: real node processes, real TCP, real files."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import requests

pytestmark = pytest.mark.cluster

CLI = [sys.executable, "-m", "harness"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Harness processes a test starts; killed (with their nodes, via cleanup) if left over."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def processes_using(path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `path` (our nodes name their cluster file)."""
    needle = str(path)
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(needle in part for part in proc.info["cmdline"] or []):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def run_cli(args: list[str], env: dict[str, str],
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env)


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def assert_well_formed(ops: list[dict]) -> None:
    """Every client invoke has exactly one completion; retired processes never come back."""
    assert [o["index"] for o in ops] == list(range(len(ops)))
    open_ops: dict = {}
    retired: set = set()
    for o in ops:
        p = o["process"]
        if p == "nemesis":
            assert o["type"] == "info"
            continue
        assert p not in retired, f"process {p} used after an info"
        if o["type"] == "invoke":
            assert p not in open_ops
            open_ops[p] = o
        else:
            assert o["type"] in ("ok", "fail", "info")
            assert open_ops.pop(p)["f"] == o["f"]
            if o["type"] == "info":
                retired.add(p)
    assert not open_ops, f"invocations without completion: {open_ops}"


def finished_run(out: Path, args: list[str], env: dict[str, str]) -> tuple[int, Path, str]:
    # With 3 nodes and N=3 there is no fallback to hold hints: a replica that missed writes is
    # repaired by anti-entropy (a 10 s interval), so quiesce must be allowed to outlast it.
    proc = run_cli(["run", "--out", str(out), "--display", "lines", "--nodes", "3",
                    "--quiesce-timeout", "20", "--seed", "7", *args], env)
    run_dir = (out / "latest").resolve()
    return proc.returncode, run_dir, proc.stdout + proc.stderr


@pytest.mark.parametrize("workload, nemesis", [
    ("cart", "partition"),
    ("register", "clock"),
    ("set", "crash"),
    ("cart", "pause"),
])
def test_run_end_to_end(tmp_path: Path, env: dict[str, str], workload: str, nemesis: str) -> None:
    out = tmp_path / "reports"
    t0 = time.monotonic()
    code, run_dir, output = finished_run(
        out, ["--workload", workload, "--nemesis", nemesis, "--time-limit", "6",
              "--nemesis-interval", "2.5", "--rate", "60"], env)
    took = time.monotonic() - t0
    assert run_dir.parent.name == f"{workload}-{nemesis}"
    test = json.loads((run_dir / "test.json").read_text())
    assert test["status"] == "complete", output
    assert test["settings"]["seed"] == 7 and nemesis in test["mechanisms"]
    # the correct store under one fault: every default checker must find it valid
    assert code == 0, output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "valid", results
    assert (run_dir / "report.html").exists()
    assert took < 45, f"a 6 s test took {took:.0f} s"

    ops = history(run_dir)
    assert_well_formed(ops)
    kinds = Counter(o["type"] for o in ops if o["process"] != "nemesis")
    assert kinds["ok"] > 50, kinds
    nemesis_ops = [o for o in ops if o["process"] == "nemesis"]
    assert {o["f"] for o in nemesis_ops} >= {"start", "stop", "heal"}
    assert all(o.get("fault") == nemesis for o in nemesis_ops if o["f"] != "heal")
    finals = [o for o in ops if o.get("final")]
    assert finals and all(o["f"] == "read" for o in finals)
    assert any(o["type"] == "ok" for o in finals)
    for o in ops:
        if o["process"] != "nemesis" and o["type"] == "ok":
            assert isinstance(o["clock"], dict) and "context" in o
            assert o["node"] in ("n1", "n2", "n3")

    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert replicas["heal_time"] is not None
    assert replicas["keys"], "the keys written are in replicas.json"
    for view in replicas["keys"].values():
        assert len(view["preference_list"]) == 3
    # the counters come through the admin token the run's cluster file asks for on admin reads
    stats = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert {r["node"] for r in stats} == {"n1", "n2", "n3"}
    resources = [json.loads(x) for x in (run_dir / "resources.jsonl").read_text().splitlines()]
    assert {r["node"] for r in resources} == {"n1", "n2", "n3"}
    assert all(r["rss_bytes"] > 0 for r in resources)
    for node in ("n1", "n2", "n3"):
        assert (run_dir / "nodes" / node / "node.log").stat().st_size > 0
    assert not processes_using(run_dir), "a node outlived its run"
    assert not list((tmp_path / "state" / "sessions").glob("*.json"))

    if nemesis == "clock":
        bumps = [o for o in nemesis_ops if o["f"] == "start" and "measured" in o["value"]]
        assert bumps, "the clock nemesis reads the skew back"
    if nemesis == "crash":
        restarts = [o for o in nemesis_ops if o["f"] == "stop" and "nodes" in o["value"]]
        assert restarts and all("errors" not in o["value"] for o in restarts)


def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_run(out: Path, env: dict[str, str], args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        CLI + ["run", "--out", str(out), "--display", "quiet", "--nodes", "3", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigint_heals_and_leaves_nothing(tmp_path: Path, env: dict[str, str],
                                         started: list) -> None:
    out = tmp_path / "reports"
    proc = start_run(out, env, ["--nemesis", "pause", "--time-limit", "40",
                                "--nemesis-interval", "3", "--seed", "11"])
    started.append(proc)
    hist = lambda: (out / "latest" / "history.jsonl")  # noqa: E731
    wait_for(lambda: hist().exists() and '"f":"start"' in hist().read_text(), 30,
             "the pause to start")
    run_dir = (out / "latest").resolve()
    assert processes_using(run_dir)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, output
    ops = history(run_dir)
    assert_well_formed(ops)
    assert ops[-1]["process"] == "nemesis" and ops[-1]["f"] == "heal"
    assert ops[-1]["value"].get("healed") is True
    assert json.loads((run_dir / "test.json").read_text())["status"] == "interrupted"
    assert not processes_using(run_dir)
    assert not list((tmp_path / "state" / "sessions").glob("*.json"))


def test_cleanup_after_kill_9_of_the_harness(tmp_path: Path, env: dict[str, str],
                                             started: list) -> None:
    out = tmp_path / "reports"
    proc = start_run(out, env, ["--nemesis", "pause", "--time-limit", "40",
                                "--nemesis-interval", "2", "--seed", "5"])
    started.append(proc)
    hist = lambda: (out / "latest" / "history.jsonl")  # noqa: E731
    wait_for(lambda: hist().exists() and '"f":"start"' in hist().read_text(), 30,
             "the workload and a pause to start")
    run_dir = (out / "latest").resolve()
    proc.kill()  # kill -9: no teardown at all
    proc.wait(timeout=10)
    left = processes_using(run_dir)
    assert len(left) == 3, "the nodes survive their harness (they have their own session)"
    cleaned = run_cli(["cleanup"], env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "stopped n1, n2, n3" in cleaned.stdout
    wait_for(lambda: not processes_using(run_dir), 10, "the nodes to go")
    assert history(run_dir), "the history so far is on disk"
    again = run_cli(["cleanup"], env)
    assert again.returncode == 0 and "nothing to clean up" in again.stdout


def test_cluster_commands(tmp_path: Path, env: dict[str, str]) -> None:
    up = run_cli(["cluster", "up", "--nodes", "3", "--name", "t"], env, timeout=60)
    root = tmp_path / "state" / "clusters" / "t"
    try:
        assert up.returncode == 0, up.stderr
        lines = up.stdout.split("\n")
        urls = dict(line.split() for line in lines if line.strip())
        assert sorted(urls) == ["n1", "n2", "n3"]
        hosts = [urlparse(u).hostname or "" for u in urls.values()]
        assert all(ipaddress.ip_address(h).is_loopback for h in hosts), hosts
        assert len({h.rsplit(".", 1)[0] for h in hosts}) == 1, "one block per run"
        put = requests.put(f"{urls['n1']}/kv/hello", json={"value": 1, "context": None},
                           timeout=5)
        assert put.status_code == 200, put.text
        # admin reads need the token the harness wrote into the cluster file
        token = tomllib.loads(next(root.rglob("cluster.toml")).read_text())["cluster"][
            "admin_token"]
        assert requests.get(f"{urls['n1']}/admin/status", timeout=5).status_code == 403
        assert requests.get(f"{urls['n1']}/admin/status", headers={"X-Admin-Token": token},
                            timeout=5).status_code == 200

        again = run_cli(["cluster", "up", "--nodes", "3", "--name", "t"], env)
        assert again.returncode == 3 and "already up" in again.stderr

        assert run_cli(["cluster", "stop", "n2", "--name", "t"], env).returncode == 0
        status = run_cli(["cluster", "status", "--name", "t"], env).stdout
        assert "n2" in status and " down" in status.split("n2 ", 1)[1].split("\n")[0]
        assert run_cli(["cluster", "stop", "n9", "--name", "t"], env).returncode == 3
        assert run_cli(["cluster", "start", "n2", "--name", "t"], env).returncode == 0
        got = requests.get(f"{urls['n2']}/kv/hello", timeout=5)
        assert got.status_code == 200 and got.json()["values"] == [1]
        status = run_cli(["cluster", "status", "--name", "t"], env).stdout
        assert status.count(" up (") == 3, status
        assert len(processes_using(root)) == 3
    finally:
        down = run_cli(["cluster", "down", "--name", "t"], env)
    assert down.returncode == 0, down.stderr
    assert not processes_using(root)
    assert run_cli(["cluster", "status", "--name", "t"], env).returncode == 3
