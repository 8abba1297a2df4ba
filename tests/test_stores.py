"""The Store/Client seam: refusals before anything starts, etcd's client against real members,
iptables partitions between loopback addresses (in effect, healed, removed), and a short etcd run
end to end. Real etcd processes (Debian's etcd-server) on 127.0.0.x, real TCP."""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.cleanup_cmd import cleanup_sessions
from harness.client import OpFailed, OpUnknown, client_session
from harness.platforms import iptables
from harness.platforms.local import LOOPBACK_KEY, LocalPlatform, free_ports
from harness.settings import ClusterSettings, TestSettings
from harness.state import Session
from harness.stores import STORES, make_store
from harness.stores.etcd import EtcdClient
from harness.suite import SuiteError, expand, parse_suite
from harness.workloads import make_workload

HAVE_ETCD = shutil.which("etcd") is not None
ROOT = os.geteuid() == 0
needs_etcd = pytest.mark.skipif(not HAVE_ETCD, reason="etcd-server is not installed "
                                "(apt-get install etcd-server; .ci/run does)")
needs_root = pytest.mark.skipif(not ROOT, reason="iptables needs root")


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(path))
    return path


# -- refusals --------------------------------------------------------------------------------


def errors(**kw: object) -> str:
    return "; ".join(TestSettings(**kw).errors())  # type: ignore[arg-type]


def test_a_workload_needing_an_operation_the_store_lacks_is_refused() -> None:
    msg = errors(store="redis", workload="cart")
    assert ("the cart workload needs siblings, which the redis store's client does not "
            "perform; workloads the redis store can run: set") in msg
    msg = errors(store="dynamo", workload="cas-register")
    assert "the cas-register workload needs cas" in msg and "cart, register, set" in msg


def test_unknown_store_bad_option_and_unsupported_fault_are_refused() -> None:
    assert "unknown store 'mongo'; choose from dynamo, etcd, redis" in errors(store="mongo")
    msg = errors(store="etcd", workload="cas-register", store_options=["fast"])
    assert "--store-option 'fast': the etcd store has these options: serializable-reads" in msg
    msg = errors(store="dynamo", store_options=["serializable-reads"])
    assert "the dynamo store has no store options" in msg
    msg = errors(store="etcd", workload="cas-register", nemesis=["clock"])
    assert "cannot be tested under the clock nemesis" in msg and "vDSO" in msg
    from harness.stores import store_errors

    # a platform no store names (ssh, the example here before, now runs every store)
    msg = "; ".join(store_errors("etcd", "cas-register", [], "mainframe", [], ClusterSettings()))
    assert "the etcd store runs on the local, netns, docker, ssh platform(s), not mainframe" in msg
    assert errors(store="etcd", workload="cas-register", platform="docker") == ""
    assert errors(store="redis", workload="set", platform="netns") == ""
    msg = errors(store="etcd", workload="cas-register",
                 cluster=ClusterSettings(bugs=["lww"]))
    assert "--bug and --node-setting configure the reference dynamo store" in msg
    assert errors(store="etcd", workload="cas-register", nemesis=["partition", "crash"]) == ""


def test_the_cli_refuses_with_the_message_and_exit_3(tmp_path: Path) -> None:
    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.run(["python3", "-m", "harness", "run", "--store", "etcd", "--workload",
                           "set", "--out", str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parent.parent, timeout=60)
    assert proc.returncode == 3
    assert "the set workload needs siblings, which the etcd store's client" in proc.stderr
    assert not list(tmp_path.glob("*/*/history.jsonl"))  # refused before anything started


def test_every_registered_store_names_its_client_operations() -> None:
    for name, cls in STORES.items():
        assert cls.name == name and cls.client_class.ops, name


def test_suite_store_options_are_judged_as_bugs_are() -> None:
    suite = parse_suite('''
[[test]]
name = "stale"
store = "etcd"
workload = "cas-register"
nemesis = "partition"
store_options = ["serializable-reads"]
expect = { linearizable = "invalid" }
''')
    tests = expand(suite).tests
    assert [t.name for t in tests] == ["stale", "stale-control"]
    assert "store_options" not in tests[1].settings
    with pytest.raises(SuiteError, match="correct store must never be invalid"):
        parse_suite('[[test]]\nname = "x"\nstore = "etcd"\nworkload = "cas-register"\n'
                    'expect = { linearizable = "invalid" }\n')
    with pytest.raises(SuiteError, match="store_options must be a list of strings"):
        parse_suite('[[test]]\nname = "x"\nstore = "etcd"\nworkload = "cas-register"\n'
                    'store_options = [1]\nexpect = { linearizable = "valid" }\n')


def test_loopback_scripts_touch_only_the_runs_own_chains() -> None:
    setup = iptables.loopback_setup_script("ab12", {1500000000: "127.0.0.2"})
    assert "-t nat -A DJS-ab12 -p tcp -m owner --gid-owner 1500000000 -j SNAT " \
           "--to-source 127.0.0.2" in setup
    assert "-I OUTPUT 1 -o lo -j DJL-ab12" in setup and " -P " not in setup
    part = iptables.loopback_partition_script("ab12", [(1500000001, "127.0.0.2")])
    assert part.splitlines()[1:] == [
        "iptables -w 5 -F DJL-ab12",
        "iptables -w 5 -A DJL-ab12 -m owner --gid-owner 1500000001 -m conntrack --ctorigdst "
        "127.0.0.2 -j DROP",
        "iptables -w 5 -A DJL-ab12 -m owner --gid-owner 1500000001 -m conntrack --ctrepldst "
        "127.0.0.2 -j DROP"]
    with pytest.raises(ValueError):
        iptables.loopback_chains("x; rm -rf /")
    with pytest.raises(ValueError, match="not an IPv4 address"):
        iptables.loopback_partition_script("ab12", [(1, "127.0.0.3; true")])


# -- real etcd members -----------------------------------------------------------------------


def _local(tmp_path: Path, store: str, kind: str = "run") -> tuple[Session, LocalPlatform]:
    """A session and a 3-node local platform running `store` (not started yet)."""
    session = Session.create(kind, tmp_path)
    cluster = ClusterSettings(nodes=3)
    return session, LocalPlatform(tmp_path / "nodes", cluster, session,
                                  store=make_store(store, cluster))


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[LocalPlatform]:
    """Three etcd members on loopback addresses, stopped (and their chains removed) after."""
    session, platform = _local(tmp_path, "etcd")
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        session.remove()


def _chains() -> str:
    return (subprocess.run(["iptables", "-w", "5", "-S"], capture_output=True, text=True).stdout
            + subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True,
                             text=True).stdout)


async def _session_call(url: str, coro_fn, timeout_s: float = 2.0,
                        serializable: bool = False):  # type: ignore[no-untyped-def]
    async with client_session() as session:
        client = EtcdClient(session, "n1", url, timeout_s, serializable=serializable)
        return await coro_fn(client)


@needs_etcd
@pytest.mark.cluster
def test_etcd_client_classifies_every_outcome(etcd3: LocalPlatform) -> None:
    url = etcd3.client_url("n1")
    key = f"k{random.randrange(1 << 30)}"

    async def ok_path(c: EtcdClient) -> list:
        missing = await c.get(key)
        await c.put(key, 3)
        read = await c.get(key)
        swapped = await c.cas(key, 3, 4)
        try:
            await c.cas(key, 3, 0)
            mismatch = None
        except OpFailed as e:
            mismatch = str(e)
        try:
            await c.put("", 1)  # etcd refuses an empty key before proposing it: a 400
            empty = None
        except OpFailed as e:
            empty = str(e)
        return [missing, read, swapped, mismatch, empty, await c.get(key)]

    missing, read, swapped, mismatch, empty, final = asyncio.run(_session_call(url, ok_path))
    assert not missing.found and missing.values == []
    assert read.values == [3] and read.meta["mod_revision"] > 0
    assert swapped.values == [4]
    assert mismatch == "cas: the value was not 3"
    assert empty is not None and empty.startswith("400 ") and "grpc code 3" in empty
    assert final.values == [4]

    # nothing listening: the request was never sent, so it certainly did not happen
    host, port = "127.0.0.250", free_ports("127.0.0.250", 1)[0]

    async def refused(c: EtcdClient) -> None:
        await c.put(key, 1)

    with pytest.raises(OpFailed, match="connect failed"):
        asyncio.run(_session_call(f"http://{host}:{port}", refused))

    # a paused member: the write may yet happen (info), the read certainly had no effect (fail)
    workload = make_workload("cas-register", 1, random.Random(1))
    etcd3.pause("n1")
    try:
        async def both(c: EtcdClient) -> list:
            from harness.workloads import Request

            return [await workload.execute(c, Request("write", key, 2)),
                    await workload.execute(c, Request("read", key))]

        write, read_done = asyncio.run(_session_call(url, both, timeout_s=1.0))
    finally:
        etcd3.resume("n1")
    assert (write.type, write.extra["error"]) == ("info", "timeout")
    assert (read_done.type, read_done.extra["error"]) == ("fail", "timeout")

    async def unknown(c: EtcdClient) -> None:
        await c.put(key, 1)

    etcd3.pause("n2")
    try:
        with pytest.raises(OpUnknown, match="timeout"):
            asyncio.run(_session_call(etcd3.client_url("n2"), unknown, timeout_s=0.5))
    finally:
        etcd3.resume("n2")


@needs_etcd
@needs_root
@pytest.mark.cluster
def test_loopback_partition_drops_real_packets_and_leaves_nothing(etcd3: LocalPlatform) -> None:
    tag = etcd3.session.extra[LOOPBACK_KEY]["tag"]
    assert f"DJL-{tag}" in _chains() and f"DJS-{tag}" in _chains()
    # isolate n1: its writes cannot commit; the majority's can
    grudge = {"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}
    assert etcd3.partition(grudge) == {}
    rules = etcd3.partition_rules()
    gid = etcd3.session.extra[LOOPBACK_KEY]["gids"]["n2"]
    n1 = etcd3.specs[0].host
    assert any(f"--gid-owner {gid}" in r and f"--ctrepldst {n1} " in r for r in rules), rules
    assert sum(" -j DROP" in r for r in rules) == 8
    # at once: a write sent right after the rules go in must not get through (the answers on
    # connections the peer opened once did, when rules matched the packet's destination)

    async def write(c: EtcdClient) -> str:
        try:
            await c.put("p", 1)
            return "ok"
        except OpUnknown as e:
            return str(e)

    assert asyncio.run(_session_call(etcd3.client_url("n1"), write, timeout_s=3.0)) == "timeout"
    assert asyncio.run(_session_call(etcd3.client_url("n2"), write, timeout_s=5.0)) == "ok"

    async def stale(c: EtcdClient) -> list:
        return (await c.get("p")).values

    # the cut-off member still answers serializable reads, from its own (stale) state
    assert asyncio.run(_session_call(etcd3.client_url("n1"), stale, serializable=True)) == []
    assert etcd3.heal_partition() == {}
    assert not any(" -j DROP" in r for r in etcd3.partition_rules())
    etcd3.stop()
    assert f"DJL-{tag}" not in _chains() and f"DJS-{tag}" not in _chains()
    assert LOOPBACK_KEY not in etcd3.session.extra


@needs_etcd
@needs_root
@pytest.mark.cluster
def test_cleanup_removes_the_chains_a_dead_run_left(tmp_path: Path) -> None:
    session, platform = _local(tmp_path, "etcd", kind="cluster")
    try:
        platform.start()
        platform.partition({"n1": {"n2"}})
        tag = session.extra[LOOPBACK_KEY]["tag"]
        lines = cleanup_sessions()  # as after a kill -9 of the harness
        assert any(f"iptables chains DJL-{tag} and DJS-{tag}" in line for line in lines), lines
        assert f"DJL-{tag}" not in _chains() and f"DJS-{tag}" not in _chains()
        assert platform.pids() == {}
    finally:
        platform.stop()


@needs_etcd
@pytest.mark.cluster
def test_short_etcd_run_end_to_end(tmp_path: Path) -> None:
    from harness.runner import run_test

    nemesis = ["partition", "crash"] if ROOT else ["crash"]
    settings = TestSettings(store="etcd", workload="cas-register", nemesis=nemesis,
                            cluster=ClusterSettings(nodes=3), time_limit=8,
                            nemesis_interval=2, rate=60, keys=3, seed=7, out=tmp_path / "r",
                            quiesce_timeout=10)
    assert settings.errors() == []
    outcome = run_test(settings, display_mode="quiet")
    assert outcome.status == "complete", outcome.error
    assert outcome.verdict == "valid", outcome.results
    run_dir = outcome.run_dir
    assert run_dir.name and run_dir.parent.name == "etcd-cas-register-" + "+".join(nemesis)
    test = json.loads((run_dir / "test.json").read_text())
    assert test["settings"]["store"] == "etcd" and test["store_version"].startswith("3.")
    if ROOT:
        assert "iptables" in test["mechanisms"]["partition"]
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["checkers"]) == {"linearizable", "perf"}
    assert results["model"] == "cas-register"
    ops = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert {o["f"] for o in ops if o["process"] != "nemesis"} == {"read", "write", "cas"}
    assert any(o.get("final") and o["type"] == "ok" for o in ops)
    # no member is left running (their command lines name the run directory)
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


@needs_etcd
@pytest.mark.cluster
def test_the_pytest_plugin_runs_a_test(tmp_path: Path) -> None:
    import tomllib

    from harness.pytest_plugin import runner

    # the entry point pytest loads once the project is installed (pip install -e .)
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"harness": "harness.pytest_plugin"}
    jepsen_run = runner(tmp_path / "reports")  # what the `jepsen_run` fixture returns
    outcome = jepsen_run(store="etcd", workload="cas-register", nemesis="pause", nodes=3,
                         time_limit=4, nemesis_interval=1.5, rate=40, keys=2, seed=3)
    assert outcome.valid, outcome.results
    with pytest.raises(ValueError, match="the cart workload needs siblings"):
        jepsen_run(store="redis", workload="cart")


def test_a_register_on_a_store_without_siblings_is_jepsens_cas_register() -> None:
    assert TestSettings(store="etcd", workload="register").workload == "cas-register"
    assert TestSettings(store="dynamo", workload="register").workload == "register"
    assert TestSettings(store="redis", workload="register").workload == "cas-register"
    assert TestSettings(store="redis", workload="cart").workload == "cart"  # refused: no stand-in


@needs_etcd
@needs_root
@pytest.mark.cluster
def test_short_etcd_run_on_netns_leaves_no_namespace(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.platforms import netns
    from harness.runner import run_test

    # a tag of our own: other runs on this machine make and remove namespaces meanwhile
    tag = "e" + secrets.token_hex(2)
    monkeypatch.setattr(netns, "new_tag", lambda: tag)
    settings = TestSettings(store="etcd", workload="cas-register", nemesis=["partition"],
                            platform="netns", cluster=ClusterSettings(nodes=3), time_limit=6,
                            nemesis_interval=2, rate=50, keys=2, seed=5, out=tmp_path / "r")
    def namespaces() -> set[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.startswith(f"dj-{tag}-")}

    assert namespaces() == set()
    outcome = run_test(settings, display_mode="quiet")
    assert outcome.valid, (outcome.error, outcome.results)
    test = json.loads((outcome.run_dir / "test.json").read_text())
    assert "inside the receiving node's network namespace" in test["mechanisms"]["partition"]
    assert all(url.startswith("http://198.18.") for url in test["nodes"].values())
    assert namespaces() == set()  # every namespace the run made is gone
    assert list((tmp_path / "state" / "sessions").glob("*.json")) == []


# -- Redis with Sentinel -------------------------------------------------------------------------

HAVE_REDIS = shutil.which("redis-server") is not None and shutil.which("redis-sentinel") is not None
needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="redis is not installed (apt-get "
                                 "install redis-server redis-sentinel; .ci/run does)")


@needs_redis
@pytest.mark.cluster
def test_redis_client_classifies_every_outcome(tmp_path: Path) -> None:
    from harness.stores.redis import RedisClient

    session, platform = _local(tmp_path, "redis")
    try:
        platform.start()
        assert set(session.nodes) == {"n1", "n2", "n3", "n1/sentinel", "n2/sentinel",
                                      "n3/sentinel"}
        assert platform.store.holder("primary", platform.specs) == "n1"  # type: ignore
        workload = make_workload("set", 1, random.Random(1))
        from harness.workloads import Request

        async def ops(node: str, timeout_s: float = 2.0) -> list:
            async with client_session() as s:
                c = RedisClient(s, node, platform.client_url(node), timeout_s)
                try:
                    return [await workload.execute(c, Request("add", "set", 1)),
                            await workload.execute(c, Request("read", "set"))]
                finally:
                    await c.close()

        add, read = asyncio.run(ops("n1"))  # the primary
        assert (add.type, add.value, read.type, read.value) == ("ok", 1, "ok", [1])
        add, _ = asyncio.run(ops("n2"))  # a replica refuses writes: certainly not done
        assert add.type == "fail" and add.extra["error"].startswith("READONLY")

        async def cas(node: str, old: int, new: int, first: int | None = None) -> list:
            async with client_session() as s:
                c = RedisClient(s, node, platform.client_url(node), 2.0)
                try:
                    if first is not None:
                        await c.put("r", first)
                    return [await c.cas("r", old, new), await c.get("r")]
                finally:
                    await c.close()

        swapped, got = asyncio.run(cas("n1", 1, 2, first=1))
        assert swapped.values == [2] and got.values == [2]
        with pytest.raises(OpFailed, match="the value was not 1"):  # it holds 2: not done
            asyncio.run(cas("n1", 1, 3))
        # on a replica: READONLY if its (possibly stale) copy matched, else a failed compare;
        # either way nothing was written
        with pytest.raises(OpFailed, match="READONLY|the value was not 2"):
            asyncio.run(cas("n2", 2, 3))
        platform.pause("n1")
        try:
            add, read = asyncio.run(ops("n1", timeout_s=0.5))
        finally:
            platform.resume("n1")
        assert (add.type, add.extra["error"]) == ("info", "timeout")
        assert (read.type, read.extra["error"]) == ("fail", "timeout")
        platform.stop()
        assert platform.pids() == {} and session.nodes == {}
        leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
        assert leftover.stdout.strip() == ""
    finally:
        platform.stop()
        session.remove()


@needs_redis
@pytest.mark.cluster
def test_short_redis_run_end_to_end(tmp_path: Path) -> None:
    from harness.runner import run_test

    settings = TestSettings(store="redis", workload="set", cluster=ClusterSettings(nodes=3),
                            time_limit=4, rate=50, seed=2, out=tmp_path / "r")
    outcome = run_test(settings, display_mode="quiet")
    assert outcome.valid, (outcome.error, outcome.results)
    assert outcome.results is not None
    assert outcome.results["checkers"]["set"]["verdict"] == "valid"
    leftover = subprocess.run(["pgrep", "-f", str(outcome.run_dir)], capture_output=True,
                              text=True)
    assert leftover.stdout.strip() == ""  # no redis-server, no sentinel


def test_an_outside_stores_published_anomaly_may_be_expected_invalid() -> None:
    suite = parse_suite('[[test]]\nname = "x"\nstore = "redis"\nworkload = "set"\n'
                        'anomaly = "asynchronous replication"\nexpect = { set = "invalid" }\n')
    assert [t.name for t in expand(suite).tests] == ["x"]  # nothing to take away: no control
    with pytest.raises(SuiteError, match="anomaly is for an outside store"):
        parse_suite('[[test]]\nname = "x"\nworkload = "set"\nanomaly = "a"\n'
                    'expect = { set = "invalid" }\n')
    assert "the redis store cannot be tested under the crash nemesis" in errors(
        store="redis", workload="set", nemesis=["crash"])
    assert "workloads the redis store can run: set" in errors(store="redis", workload="cart")


def test_isolate_primary_is_opt_in_and_needs_a_store_that_names_its_primary() -> None:
    from nemesis.schedule import parse_shapes, plan

    assert "isolate-primary" not in parse_shapes("all")
    assert parse_shapes("isolate-primary,halves") == ["halves", "isolate-primary"]
    actions = plan(["n1", "n2", "n3"], ["partition"], 5, 20, random.Random(1),
                   ["isolate-primary"])
    starts = [a.value for a in actions if a.f == "start"]
    assert starts and all(v["target"] == "primary" for v in starts)
    msg = errors(store="etcd", workload="cas-register", nemesis=["partition"],
                 partitions=["isolate-primary"])
    assert "the isolate-primary partition needs a store that can tell which node is the " \
           "primary (redis); the etcd store cannot" in msg
    assert errors(store="redis", workload="set", nemesis=["partition"],
                  partitions=["isolate-primary"]) == ""


def test_docker_runs_a_stores_command_from_the_image_with_paths_in_the_mount() -> None:
    import sys

    from harness.platforms.base import NodeSpec
    from harness.platforms.docker import MOUNT, exec_script, image_stores, in_container
    from harness.stores import make_store

    spec = NodeSpec("n2", "198.18.7.12", 8000, 9000)
    redis = make_store("redis", ClusterSettings(nodes=3))
    assert in_container(redis.command(spec, Path(MOUNT))) == ["redis-server",
                                                              "/cluster/n2/redis.conf"]
    assert in_container([sys.executable, "-m", "node"]) == ["python3", "-m", "node"]
    assert in_container(["etcd", "--name", "n2"]) == ["etcd", "--name", "n2"]
    script = exec_script("n2/sentinel", ["redis-sentinel", "/cluster/n2/sentinel.conf"],
                         "/cluster/n2/sentinel.log")
    assert script.endswith("exec redis-sentinel /cluster/n2/sentinel.conf "
                           ">>/cluster/n2/sentinel.log 2>&1")
    # an image built before the label carries the reference node only
    assert image_stores(None) == {"dynamo"}
    assert image_stores({"dynamo-harness.stores": "dynamo etcd redis"}) == {"dynamo", "etcd",
                                                                           "redis"}


def test_redis_files_name_paths_relative_to_the_nodes_folder(tmp_path: Path) -> None:
    from harness.platforms.base import NodeSpec
    from harness.stores import make_store

    specs = [NodeSpec(f"n{i}", f"127.0.0.{i + 1}", 7000 + i, 8000 + i) for i in (1, 2, 3)]
    make_store("redis", ClusterSettings(nodes=3)).layout(tmp_path, specs)
    for path in tmp_path.glob("*/*.conf"):
        assert str(tmp_path) not in path.read_text(), path  # the docker platform mounts it


@needs_etcd
@pytest.mark.cluster
def test_cluster_command_runs_an_outside_store_by_hand(tmp_path: Path) -> None:
    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness", "cluster", *args, "--name", "e"],
                              capture_output=True, text=True, timeout=120, env=env)

    up = cli("up", "--store", "etcd", "--nodes", "3")
    try:
        assert up.returncode == 0, up.stderr
        urls = dict(line.split() for line in up.stdout.splitlines() if line.strip())
        put = requests.post(f"{urls['n1']}/v3/kv/put", timeout=10,
                            json={"key": "aw==", "value": "MQ=="})  # k = 1
        assert put.status_code == 200, put.text
        assert cli("stop", "n2").returncode == 0
        assert " down" in cli("status").stdout.splitlines()[2]
        assert cli("start", "n2").returncode == 0
        got = requests.post(f"{urls['n3']}/v3/kv/range", json={"key": "aw=="}, timeout=10)
        assert got.json()["kvs"][0]["value"] == "MQ=="
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "up (ready)" not in cli("status").stdout  # no such cluster any more
    refused = subprocess.run([sys.executable, "-m", "harness", "cluster", "up", "--store", "etcd",
                              "--clock", "--name", "c"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert refused.returncode == 3 and "clock" in refused.stderr
