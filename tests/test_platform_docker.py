"""The docker platform for real: the image, a network of ours, iptables in containers, cleanup.

Needs a Docker engine (scripts/start-dockerd.sh) and a base image (python:3.11-slim, or
dynamo-base:bookworm from scripts/make-base-image.sh): skipped otherwise, except under CI=true.
The image is built once per session (the engine's layer cache makes a rebuild quick).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_platform_support import (
    CLI,
    PROBE,
    build_node_image,
    history_lines,
    host_leftovers,
    session_records,
    start_run,
    wait_for,
)

from harness.settings import ClusterSettings
from harness.state import Session

pytestmark = pytest.mark.cluster
LABEL = "dynamo-harness.session"

def admin_status(cluster, node: str, timeout: float) -> requests.Response:
    """The node's /admin/status, with the admin token the harness's cluster files ask for."""
    return requests.get(f"{cluster.client_url(node)}/admin/status",
                        headers=cluster.admin_headers, timeout=timeout)



@pytest.fixture(scope="session")
def image() -> str:
    return build_node_image()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def docker_leftovers(session_id: str) -> list[str]:
    from harness.platforms.docker import docker_client

    client = docker_client()
    found = [f"container {c.name}" for c in
             client.containers.list(all=True, filters={"label": f"{LABEL}={session_id}"})]
    found += [f"network {n.name}" for n in
              client.networks.list(filters={"label": f"{LABEL}={session_id}"})]
    return found


@pytest.fixture
def cluster(tmp_path: Path, state: Path, image: str) -> Iterator:
    from harness.platforms.docker import DockerPlatform

    session = Session.create("run", tmp_path)
    platform = DockerPlatform(tmp_path / "nodes", ClusterSettings(nodes=3, q=16), session,
                              clock=True, image=image)
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        session.remove()
    assert docker_leftovers(session.id) == []
    assert host_leftovers(platform.record["tag"]) == []


def probe_from(platform, src: str, dst: str, port: int = 9000, timeout: float = 1.5) -> str:
    """A TCP connection from `src`'s container to `dst`'s peer port: ok/timeout/refused."""
    host = platform._spec(dst).host
    result = platform._container(src).exec_run(["python3", "-c", PROBE, host, str(port),
                                                str(timeout)])
    return result.output.decode().strip()


def test_nodes_are_containers_on_our_network(cluster) -> None:
    for node in cluster.node_ids():
        container = cluster._container(node)
        assert container.labels[LABEL] == cluster.session.id
        assert "NET_ADMIN" in container.attrs["HostConfig"]["CapAdd"]
        nets = container.attrs["NetworkSettings"]["Networks"]
        assert list(nets) == [cluster.record["network"]]
        assert nets[cluster.record["network"]]["IPAddress"] == cluster._spec(node).host
        assert admin_status(cluster, node, 2).ok
    # the node's log is written straight into the run directory
    assert "harness: starting n1" in cluster.log_path("n1").read_text()


def test_isolate_one_partition_is_real_and_heals(cluster) -> None:
    assert probe_from(cluster, "n2", "n1") == "ok"
    assert cluster.partition({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}) == {}
    assert cluster.partition_rules("n1")[1:] == [
        f"-A DJ-PART -s {cluster._spec(p).host}/32 -j DROP" for p in ("n2", "n3")]
    assert probe_from(cluster, "n2", "n1") == "timeout"
    assert probe_from(cluster, "n2", "n3") == "ok"
    assert admin_status(cluster, 'n1', 2).ok
    assert cluster.heal_partition() == {}
    assert cluster.partition_rules("n1") == []
    assert probe_from(cluster, "n2", "n1") == "ok"


def test_clock_nemesis_moves_the_wall_clock_and_heal_resets_it(cluster) -> None:
    cluster.set_clock_offset("n3", -30.0)
    time.sleep(0.1)
    measured = cluster.read_clock_offsets()
    assert measured["n3"] == pytest.approx(-30.0, abs=1.0)
    assert measured["n1"] == pytest.approx(0.0, abs=1.0)
    assert cluster.heal_all() == {}
    time.sleep(0.1)
    assert cluster.read_clock_offsets()["n3"] == pytest.approx(0.0, abs=1.0)


def test_crash_keeps_data_and_restart_restores_the_partition(cluster) -> None:
    url = cluster.client_url("n1")
    assert requests.put(f"{url}/kv/k", json={"value": "v1", "context": None},
                        params={"w": 3}, timeout=5).ok
    cluster.partition({"n1": {"n3"}})
    cluster.kill("n1")
    assert "n1" not in cluster.pids()
    cluster.restart("n1")
    assert probe_from(cluster, "n3", "n1") == "timeout"  # a fresh netns got its rules again
    got = requests.get(f"{url}/kv/k", params={"r": 1}, timeout=5).json()
    assert got["values"] == ["v1"]
    assert cluster.heal_all() == {}


def test_partition_reaches_a_paused_container(cluster) -> None:
    cluster.pause("n2")
    assert cluster.partition({"n2": {"n1"}}) == {}
    cluster.resume("n2")
    assert probe_from(cluster, "n1", "n2") == "timeout"
    assert cluster.heal_all() == {}
    assert probe_from(cluster, "n1", "n2") == "ok"


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))


def _start_run(tmp_path: Path, env: dict[str, str], time_limit: float) -> subprocess.Popen:
    return start_run(tmp_path, env, "docker", "partition,clock", time_limit)


def test_harness_run_on_docker_is_valid_and_says_iptables(
        tmp_path: Path, cli_env: dict[str, str], image: str) -> None:
    proc = _start_run(tmp_path, cli_env, 8)
    try:
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    run_dir = next((tmp_path / "reports").glob("cart-*/2*/"))
    test = json.loads((run_dir / "test.json").read_text())
    assert test["platform"] == "docker"
    assert "iptables" in test["mechanisms"]["partition"]
    assert "libfaketime" in test["mechanisms"]["clock"]
    assert "iptables" in (run_dir / "report.html").read_text()
    assert (run_dir / "nodes" / "n2" / "node.log").stat().st_size > 0
    assert session_records(tmp_path / "state") == []


def test_kill_9_then_cleanup_leaves_nothing(tmp_path: Path, cli_env: dict[str, str],
                                            image: str) -> None:
    proc = _start_run(tmp_path, cli_env, 60)
    try:
        wait_for(lambda: history_lines(tmp_path / "reports") > 20, 60, "operations")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    record = session_records(tmp_path / "state")[0]
    assert len(docker_leftovers(record["id"])) == 4  # three containers and the network
    for _ in range(2):
        done = subprocess.run(CLI + ["cleanup"], env=cli_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert docker_leftovers(record["id"]) == []
    assert host_leftovers(record["extra"]["docker"]["tag"]) == []
    assert session_records(tmp_path / "state") == []


def test_sigint_leaves_nothing(tmp_path: Path, cli_env: dict[str, str], image: str) -> None:
    proc = _start_run(tmp_path, cli_env, 60)
    try:
        wait_for(lambda: history_lines(tmp_path / "reports") > 20, 60, "operations")
        session_id = session_records(tmp_path / "state")[0]["id"]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert docker_leftovers(session_id) == []
    assert session_records(tmp_path / "state") == []
