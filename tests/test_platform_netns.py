"""The netns platform for real: namespaces, a bridge, iptables partitions, libfaketime, cleanup.

Needs root with iproute2 and iptables: skipped otherwise, except under CI=true where that fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_platform_support import (
    CLI,
    PROBE,
    history_lines,
    host_leftovers,
    need_netns,
    session_records,
    sh,
    start_run,
    wait_for,
)

from harness.platforms.local import find_libfaketime
from harness.settings import ClusterSettings
from harness.state import Session

pytestmark = pytest.mark.cluster

def admin_status(cluster, node: str, timeout: float) -> requests.Response:
    """The node's /admin/status, with the admin token the harness's cluster files ask for."""
    return requests.get(f"{cluster.client_url(node)}/admin/status",
                        headers=cluster.admin_headers, timeout=timeout)



@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    need_netns()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def cluster(tmp_path: Path, state: Path) -> Iterator:
    from harness.platforms.netns import NetnsPlatform

    find_libfaketime()
    session = Session.create("run", tmp_path)
    platform = NetnsPlatform(tmp_path / "nodes", ClusterSettings(nodes=3, q=16), session,
                             clock=True)
    tag = platform.net.record["tag"]
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        session.remove()
    assert host_leftovers(tag) == []
    assert not any(str(tmp_path) in " ".join(p) for p in _cmdlines())


def _cmdlines() -> list[list[str]]:
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(proc.info["cmdline"] or [])
    return out


def probe_from(platform, src: str, dst: str, port: int = 9000, timeout: float = 1.5) -> str:
    """Open a TCP connection from `src`'s namespace to `dst`'s peer port: ok/timeout/refused."""
    host = platform._spec(dst).host
    proc = subprocess.run(["ip", "netns", "exec", platform.net.namespace(src), sys.executable,
                           "-c", PROBE, host, str(port), str(timeout)],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() or proc.stderr.strip()


def test_nodes_live_in_their_own_namespaces_without_default_route(cluster) -> None:
    for node in cluster.node_ids():
        ns = cluster.net.namespace(node)
        assert sh(f"ip -n {ns} route show default").strip() == ""
        addr = sh(f"ip -n {ns} -4 -br addr show eth0")
        assert cluster._spec(node).host in addr and addr.split()[2].startswith("198.18.")
        # the pid the harness records is the node itself, inside that namespace
        assert str(cluster.pids()[node]) in sh(f"ip netns pids {ns}").split()
        assert admin_status(cluster, node, 2).ok


def test_isolate_one_partition_is_real_and_heals(cluster) -> None:
    assert probe_from(cluster, "n2", "n1") == "ok"
    errors = cluster.partition({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}})
    assert errors == {}
    assert probe_from(cluster, "n2", "n1") == "timeout"
    assert probe_from(cluster, "n1", "n3") == "timeout"
    assert probe_from(cluster, "n2", "n3") == "ok"  # the majority still talks
    # the harness (on the host) still reaches the isolated node's client API
    assert admin_status(cluster, 'n1', 2).ok
    assert cluster.heal_partition() == {}
    assert probe_from(cluster, "n2", "n1") == "ok"
    assert cluster.partition_rules("n1") == []


def test_one_way_partition_drops_one_direction_only(cluster) -> None:
    cluster.partition({"n1": {"n2"}})
    n2 = cluster._spec("n2").host
    assert cluster.partition_rules("n1") == ["-N DJ-PART", f"-A DJ-PART -s {n2}/32 -j DROP"]
    assert cluster.partition_rules("n2") == []
    assert probe_from(cluster, "n2", "n1") == "timeout"  # n1 drops what n2 sends
    assert probe_from(cluster, "n3", "n1") == "ok"
    cluster.heal_partition()


def test_heal_keeps_rules_the_harness_did_not_write(cluster) -> None:
    ns = cluster.net.namespace("n1")
    foreign = "-A INPUT -s 198.18.255.254/32 -j ACCEPT"
    subprocess.run(f"ip netns exec {ns} iptables {foreign}", shell=True, check=True)
    cluster.partition({"n1": {"n2"}})
    rules = sh(f"ip netns exec {ns} iptables -S INPUT").splitlines()
    assert rules[1] == "-A INPUT -j DJ-PART"  # ours first
    assert foreign in rules
    cluster.heal_partition()
    rules = sh(f"ip netns exec {ns} iptables -S").splitlines()
    assert foreign in rules
    assert not any("DJ-PART" in r for r in rules)


def test_clock_nemesis_moves_the_wall_clock_and_heal_resets_it(cluster) -> None:
    cluster.set_clock_offset("n2", 45.0)
    time.sleep(0.1)
    measured = cluster.read_clock_offsets()
    assert measured["n2"] == pytest.approx(45.0, abs=1.0)
    assert measured["n1"] == pytest.approx(0.0, abs=1.0)
    assert cluster.heal_all() == {}
    time.sleep(0.1)
    assert cluster.read_clock_offsets()["n2"] == pytest.approx(0.0, abs=1.0)


def test_crash_restart_and_pause_keep_the_partition(cluster) -> None:
    cluster.partition({"n1": {"n3"}})
    old = cluster.pids()["n1"]
    cluster.kill("n1")
    assert "n1" not in cluster.pids()
    cluster.restart("n1")
    assert cluster.pids()["n1"] != old
    assert probe_from(cluster, "n3", "n1") == "timeout"  # the namespace kept its rules
    cluster.pause("n2")
    with pytest.raises(requests.RequestException):
        admin_status(cluster, 'n2', 0.5)
    assert cluster.heal_all() == {}
    assert admin_status(cluster, 'n2', 2).ok
    assert probe_from(cluster, "n3", "n1") == "ok"


def test_packet_fault_delays_or_says_why_not(cluster) -> None:
    from harness.platforms.base import PlatformError

    try:
        cluster.set_packet("n3", delay_ms=200)
    except PlatformError as e:
        assert "netem" in str(e)
        pytest.skip(f"this kernel cannot do netem: {e}")
    t0 = time.monotonic()
    admin_status(cluster, 'n3', 5)
    assert time.monotonic() - t0 >= 0.2
    assert cluster.heal_all() == {}


# -- the CLI: a whole run, SIGINT, kill -9 + cleanup ------------------------------------------


def _start_run(tmp_path: Path, env: dict[str, str], time_limit: float) -> subprocess.Popen:
    return start_run(tmp_path, env, "netns", "partition", time_limit)


def _running_tag(state: Path) -> str:
    def created() -> str | None:
        for rec in session_records(state):
            net = rec.get("extra", {}).get("netns", {})
            if net.get("created"):
                return net["tag"]
        return None

    return wait_for(created, 30, "the run to create its namespaces")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))


def test_harness_run_on_netns_is_valid_and_says_iptables(tmp_path: Path,
                                                         cli_env: dict[str, str]) -> None:
    proc = _start_run(tmp_path, cli_env, 8)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    import json

    run_dir = next((tmp_path / "reports").glob("cart-partition/*/"))
    test = json.loads((run_dir / "test.json").read_text())
    assert test["platform"] == "netns"
    assert "iptables" in test["mechanisms"]["partition"]
    assert "iptables" in (run_dir / "report.html").read_text()
    assert (run_dir / "nodes" / "n1" / "node.log").stat().st_size > 0
    assert session_records(tmp_path / "state") == []


def test_sigint_leaves_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = _start_run(tmp_path, cli_env, 60)
    try:
        tag = _running_tag(tmp_path / "state")
        wait_for(lambda: history_lines(tmp_path / "reports") > 20, 30, "operations")
        assert host_leftovers(tag)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert host_leftovers(tag) == []
    assert session_records(tmp_path / "state") == []


def test_kill_9_then_cleanup_leaves_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = _start_run(tmp_path, cli_env, 60)
    try:
        tag = _running_tag(tmp_path / "state")
        wait_for(lambda: history_lines(tmp_path / "reports") > 20, 30, "operations")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    record = session_records(tmp_path / "state")[0]
    namespaces = record["extra"]["netns"]["namespaces"].values()
    assert all(ns in sh("ip netns list") for ns in namespaces)  # the nodes outlived the harness
    for _ in range(2):  # twice: the second finds nothing and is harmless
        done = subprocess.run(CLI + ["cleanup"], env=cli_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert host_leftovers(tag) == []
    assert session_records(tmp_path / "state") == []
    assert not any(str(tmp_path) in " ".join(p) for p in _cmdlines())
