"""The outside stores (etcd, Redis with Sentinel) on the netns and docker platforms, for real.

Short runs of the issue's done-criterion (`--store etcd --workload cas-register --nemesis
partition`, `--store redis --workload set --nemesis partition`) on each platform, and checks
that a store's sidecars (Redis Sentinel) live in their node's namespace or container, so that a
partition cuts them off too, and that a crash on docker kills the node process alone. After every
run nothing of it may remain: no namespace, link, iptables rule, container, network or process.

Needs root (netns) or a Docker engine and a base image (docker); skipped otherwise, saying why,
except under CI=true (test_platform_support.skip_or_fail). The docker tests build their own tag of
the node image (the engine's layer cache makes that quick) and point the platform at it with
HARNESS_DOCKER_IMAGE, so a concurrent rebuild of dynamo-node:latest cannot change it under them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_platform_support import (
    PROBE,
    build_node_image,
    host_leftovers,
    need_netns,
    sh,
    skip_or_fail,
    wait_for,
)

from harness.settings import ClusterSettings, TestSettings
from harness.state import Session

pytestmark = pytest.mark.cluster
TEST_IMAGE = "dynamo-node:stores-test"
LABEL = "dynamo-harness.session"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def need_programs(store: str) -> None:
    from harness.stores import store_class

    missing = store_class(store).missing()
    if missing:
        skip_or_fail(missing)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The node image with the stores, under a tag of this module's own."""
    from harness.platforms.docker import docker_client

    tag = build_node_image(TEST_IMAGE)
    yield tag
    docker_client().images.remove(tag)  # the layers stay in the engine's cache


@pytest.fixture
def docker_image(image: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HARNESS_DOCKER_IMAGE", image)
    return image


# -- what a run leaves behind ---------------------------------------------------------------------


def processes_naming(path: Path) -> list[str]:
    return [f"process {line}" for line in sh(f"pgrep -af {path}").splitlines()
            if "pgrep" not in line]


def run_leftovers(run_dir: Path) -> list[str]:
    """Anything of this run still on the machine: processes naming its directory, containers
    mounting it, its namespaces, links and rules (by the tag in its node logs), its network and
    bridge address (by its subnet, unless another process has claimed that subnet since)."""
    from harness.platforms.docker import docker_client
    from harness.platforms.netalloc import claim_dir

    found = processes_naming(run_dir)
    tags = set()
    for log in run_dir.glob("nodes/*/node.log"):
        tags |= set(re.findall(r" in dj-([0-9a-f]{5})-n\d+ ", log.read_text(errors="replace")))
    for tag in tags:
        found += host_leftovers(tag)
    test = json.loads((run_dir / "test.json").read_text())
    octets = {url.split("//")[1].split(".")[2] for url in test["nodes"].values()}
    platform = test["platform"]
    if platform == "docker":
        client = docker_client()
        for c in client.containers.list(all=True, filters={"label": LABEL}):
            if any(str(m.get("Source", "")).startswith(str(run_dir)) for m in c.attrs["Mounts"]):
                found.append(f"container {c.name}")
    for n in octets:
        claim = claim_dir() / n
        try:
            claimed = json.loads(claim.read_text())
        except (OSError, ValueError):
            claimed = None
        if claimed is not None and claimed.get("pid") == os.getpid():
            found.append(f"subnet claim {claim}")
        if claimed is not None:
            continue  # someone else's cluster uses this subnet now
        found += [f"address {line}" for line in sh("ip -br addr").splitlines()
                  if f"198.18.{n}.1/24" in line]
        if platform == "docker":
            for net in docker_client().networks.list(filters={"label": LABEL}):
                pools = net.attrs.get("IPAM", {}).get("Config") or []
                if any(p.get("Subnet") == f"198.18.{n}.0/24" for p in pools):
                    found.append(f"network {net.name}")
    return found


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def short_run(tmp_path: Path, store: str, workload: str, platform: str, seed: int):
    from harness.runner import run_test

    settings = TestSettings(store=store, workload=workload, nemesis=["partition"],
                            platform=platform, cluster=ClusterSettings(nodes=3), time_limit=10,
                            nemesis_interval=3, rate=50, keys=2, seed=seed,
                            out=tmp_path / "r", quiesce_timeout=20)
    assert settings.errors() == []
    outcome = run_test(settings, display_mode="quiet")
    assert outcome.status == "complete", outcome.error
    run_dir = outcome.run_dir
    test = json.loads((run_dir / "test.json").read_text())
    assert test["platform"] == platform
    assert all(url.startswith("http://198.18.") for url in test["nodes"].values())
    ops = history(run_dir)
    nemesis = [o for o in ops if o["process"] == "nemesis" and o.get("f") == "start"]
    assert nemesis, "the schedule started no partition"
    assert run_leftovers(run_dir) == []
    assert list((tmp_path / "state" / "sessions").glob("*.json")) == []
    return outcome, test, ops


def check_etcd(outcome, test: dict, ops: list[dict]) -> None:
    assert outcome.verdict == "valid", outcome.results
    assert outcome.results["checkers"]["linearizable"]["verdict"] == "valid"
    assert "iptables" in test["mechanisms"]["partition"]
    assert sum(1 for o in ops if o["type"] == "ok" and o["f"] in ("write", "cas")) > 0
    assert any(o.get("final") and o["type"] == "ok" for o in ops)


def check_redis(outcome, test: dict, ops: list[dict]) -> None:
    # a cut-off primary may lose acknowledged adds (Redis Sentinel's known anomaly) or, in so
    # short a run, not: valid (exit 0) and invalid (exit 1) are both right; unknown is not
    assert outcome.verdict in ("valid", "invalid"), outcome.results
    assert outcome.results["checkers"]["set"]["verdict"] in ("valid", "invalid")
    assert "iptables" in test["mechanisms"]["partition"]
    assert sum(1 for o in ops if o["type"] == "ok" and o["f"] == "add") > 0
    final = [o for o in ops if o.get("final") and o["type"] == "ok"]
    assert final and final[-1]["value"], "the final read saw no element"
    sentinel_log = (outcome.run_dir / "nodes" / "n2" / "sentinel.log").read_text()
    # every sentinel found the others on the cluster's own addresses
    assert len(set(re.findall(r"\+sentinel sentinel \w+ (198\.18\.\d+\.\d+)",
                              sentinel_log))) == 2


# -- the done-criterion, on netns and docker ----------------------------------------------------


def test_etcd_cas_register_partition_on_netns(tmp_path: Path) -> None:
    need_netns()
    need_programs("etcd")
    check_etcd(*short_run(tmp_path, "etcd", "cas-register", "netns", seed=11))


def test_redis_set_partition_on_netns(tmp_path: Path) -> None:
    need_netns()
    need_programs("redis")
    check_redis(*short_run(tmp_path, "redis", "set", "netns", seed=12))


def test_etcd_cas_register_partition_on_docker(tmp_path: Path, docker_image: str) -> None:
    outcome, test, ops = short_run(tmp_path, "etcd", "cas-register", "docker", seed=13)
    check_etcd(outcome, test, ops)
    assert "container" in test["mechanisms"]["partition"]


def test_redis_set_partition_on_docker(tmp_path: Path, docker_image: str) -> None:
    check_redis(*short_run(tmp_path, "redis", "set", "docker", seed=14))


# -- sidecars live with their node --------------------------------------------------------------


def _redis_platform(tmp_path: Path, platform: str):
    from harness.stores import make_store

    cluster = ClusterSettings(nodes=3)
    store = make_store("redis", cluster)
    session = Session.create("run", tmp_path)
    if platform == "netns":
        from harness.platforms.netns import NetnsPlatform

        return session, NetnsPlatform(tmp_path / "nodes", cluster, session, store=store)
    from harness.platforms.docker import DockerPlatform

    return session, DockerPlatform(tmp_path / "nodes", cluster, session, store=store)


def test_netns_sentinels_live_in_their_nodes_namespace_and_are_partitioned(
        tmp_path: Path) -> None:
    need_netns()
    need_programs("redis")
    session, platform = _redis_platform(tmp_path, "netns")
    tag = platform.net.record["tag"]
    try:
        platform.start()
        for node in platform.node_ids():
            pid = session.nodes[f"{node}/sentinel"]["pid"]
            assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(
                f"/proc/{session.nodes[node]['pid']}/ns/net")
        n1 = platform.spec("n1").host

        def probe() -> str:
            return subprocess.run(
                ["ip", "netns", "exec", platform.net.namespace("n2"), "python3", "-c", PROBE,
                 n1, "9000", "1.0"], capture_output=True, text=True, timeout=10).stdout.strip()

        assert probe() == "ok"  # n2 reaches n1's sentinel
        assert platform.partition({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}) == {}
        assert probe() == "timeout"
        assert platform.heal_partition() == {}
        assert probe() == "ok"
        # a crash is the node's alone: the sentinel beside it lives on
        sentinel = session.nodes["n1/sentinel"]
        platform.kill("n1")
        assert not platform.is_running("n1")
        from harness.state import matching_process

        assert matching_process(sentinel) is not None
    finally:
        platform.stop()
        session.remove()
    assert host_leftovers(tag) == []
    assert processes_naming(tmp_path) == []


def test_docker_sentinels_share_the_container_and_survive_a_crash(
        tmp_path: Path, docker_image: str) -> None:
    session, platform = _redis_platform(tmp_path, "docker")
    tag = platform.record["tag"]
    try:
        platform.start()
        n1 = platform.spec("n1").host

        def probe() -> str:
            result = platform._container("n2").exec_run(["python3", "-c", PROBE, n1, "9000",
                                                         "1.0"])
            return result.output.decode().strip()

        assert probe() == "ok"  # n2's container reaches n1's sentinel
        assert platform.partition({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}) == {}
        assert probe() == "timeout"
        assert platform.heal_partition() == {}
        assert probe() == "ok"
        assert platform.store.holder("primary", platform.specs) == "n1"  # type: ignore
        pid = platform.pids()["n1"]
        platform.kill("n1")  # SIGKILL of redis-server alone
        assert not platform.is_running("n1") and "n1" not in platform.pids()
        assert platform._state("n1")["Running"]  # the container lives on
        assert platform._exec_state("n1/sentinel")["Running"]
        assert platform.pids() and pid not in platform.pids().values()
        platform.restart("n1")
        assert platform.is_running("n1") and platform.pids()["n1"] != pid
        log = platform.log_path("n1").read_text()
        assert log.count("--- harness: starting n1") == 2
        wait_for(lambda: platform.store.is_ready(platform.spec("n1")), 10, "n1 to answer")
    finally:
        platform.stop()
        session.remove()
    from harness.platforms.docker import docker_client

    client = docker_client()
    assert client.containers.list(all=True, filters={"label": f"{LABEL}={session.id}"}) == []
    assert client.networks.list(filters={"label": f"{LABEL}={session.id}"}) == []
    assert host_leftovers(tag) == []


# -- kill -9 of the harness, then `harness cleanup` ---------------------------------------------


@pytest.mark.parametrize("platform", ["netns", "docker"])
def test_kill_9_of_a_redis_run_then_cleanup_leaves_nothing(
        tmp_path: Path, platform: str, request: pytest.FixtureRequest) -> None:
    import signal

    from test_platform_support import CLI, history_lines, session_records

    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))
    if platform == "netns":
        need_netns()
        need_programs("redis")
    else:
        env["HARNESS_DOCKER_IMAGE"] = request.getfixturevalue("image")
    proc = subprocess.Popen(
        CLI + ["run", "--platform", platform, "--store", "redis", "--workload", "set",
               "--nemesis", "partition", "--nodes", "3", "--time-limit", "60",
               "--display", "quiet", "--out", str(tmp_path / "reports")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        # the sentinels start once every node is ready, before the first operation
        wait_for(lambda: history_lines(tmp_path / "reports") > 20, 60, "operations")
        logs = list((tmp_path / "reports").glob("*/*/nodes/*/sentinel.log"))
        assert len(logs) == 3
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    record = session_records(tmp_path / "state")[0]
    tag = record["extra"][platform]["tag"]
    assert host_leftovers(tag) or platform == "docker"  # the cluster outlived the harness
    for _ in range(2):  # twice: the second finds nothing and is harmless
        done = subprocess.run(CLI + ["cleanup"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert host_leftovers(tag) == []
    assert session_records(tmp_path / "state") == []
    assert processes_naming(tmp_path) == []
    if platform == "docker":
        from harness.platforms.docker import docker_client

        client = docker_client()
        label = f"{LABEL}={record['id']}"
        assert client.containers.list(all=True, filters={"label": label}) == []
        assert client.networks.list(filters={"label": label}) == []
