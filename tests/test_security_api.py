"""Issue 17's settings: the cluster secret, limits with their defaults, explicit bind
addresses, admin reads behind the admin token, and the bound on hints held per owner."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import requests
from nodeproc import LocalCluster

from node import clocks
from node.config import ConfigError, parse_cluster
from node.env import ManualClock
from node.replica import HintLimit, Replica
from node.storage import MemoryStorage

BASE = """
[cluster]
{extra}

[[nodes]]
id = "n1"
host = "127.0.0.2"
client_port = 8001
peer_port = 9001
{node_extra}
"""


def parse(extra: str = 'cluster_secret = "0123456789abcdef"', node_extra: str = ""):
    return parse_cluster(BASE.format(extra=extra, node_extra=node_extra), Path("/"))


def test_limits_have_documented_defaults() -> None:
    cfg = parse()
    assert (cfg.max_siblings, cfg.max_sibling_bytes, cfg.max_context_entries, cfg.max_key_bytes,
            cfg.max_hints_per_peer) == (100, 4 << 20, 1000, 1024, 100_000)
    assert cfg.name == "dynamo" and not cfg.insecure and cfg.admin_reads == "open"
    assert cfg.node("n1").bind_host == "127.0.0.2"  # the host, unless bind says otherwise
    assert parse(node_extra='bind = "127.0.0.1"').node("n1").bind_host == "127.0.0.1"


@pytest.mark.parametrize("extra,message", [
    ("", "cluster_secret is required"),
    ('cluster_secret = "short"', "at least 16 characters"),
    ('cluster_secret = "0123456789abcdef"\ninsecure = true', "contradict"),
    ('insecure = "yes"', "insecure must be true or false"),
    ('cluster_secret = "0123456789abcdef"\nadmin_reads = "token"', "needs an admin_token"),
    ('cluster_secret = "0123456789abcdef"\nadmin_reads = "closed"', "admin_reads must be"),
    ('cluster_secret = "0123456789abcdef"\nmax_frame_bytes = 4194304',
     "at least twice max_sibling_bytes"),
    ('cluster_secret = "0123456789abcdef"\nmax_siblings = 0', "max_siblings must be between"),
])
def test_bad_security_settings_say_what_is_wrong(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(extra)


def test_insecure_runs_without_a_secret() -> None:
    assert parse("insecure = true").cluster_secret == ""


def test_hints_per_owner_are_bounded() -> None:
    async def main() -> None:
        clock = ManualClock(wall_ms=1, monotonic=10.0)
        storage = MemoryStorage()
        replica = Replica(storage, "n1.x", clock, max_hints=3)
        v = [clocks.Version("n2.y", 1, 1, (), '"v"')]
        for k in ("a", "b", "c"):
            await replica.hint("n3", k, v)
        with pytest.raises(HintLimit, match="max_hints_per_peer"):
            await replica.hint("n3", "d", v)
        await replica.hint("n3", "a", v)  # a key already hinted is merged, not counted
        await replica.hint("n4", "d", v)  # another owner has its own budget
        await storage.hint_delete("n3", "a")  # handoff delivered one
        with pytest.raises(HintLimit):
            await replica.hint("n3", "d", v)  # recounted at most once a second
        clock.advance(1.0)
        await replica.hint("n3", "d", v)
        assert len(storage.hint_keys("n3")) == 3

    asyncio.run(main())


@pytest.mark.cluster
def test_admin_reads_need_the_token_when_asked(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, size=1, first_host=90, n=1, r=1, w=1,
                      admin_reads="token") as c:
        c.procs["n1"] = c.start("n1", wait=False)
        token = {"X-Admin-Token": "test-token"}
        for _ in range(300):
            try:
                if requests.get(c.url("n1", "/admin/status"), headers=token,
                                timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        for path in ("/admin/status", "/admin/stats", "/admin/aae", "/admin/clock",
                     "/admin/replicas/k"):
            r = requests.get(c.url("n1", path), timeout=10)
            assert r.status_code == 403 and r.json()["error"] == "forbidden", path
            assert requests.get(c.url("n1", path), headers=token, timeout=10).status_code == 200
        r = requests.put(c.url("n1", "/kv/k"), json={"value": 1, "context": None}, timeout=10)
        assert r.status_code == 200  # the client API is not the admin API


def test_the_harness_writes_a_fresh_secret_into_every_cluster_file(tmp_path: Path) -> None:
    from harness.platforms.clusterfile import cluster_toml
    from harness.platforms.local import NodeSpec
    from harness.settings import ClusterSettings
    from node.config import load_cluster

    specs = [NodeSpec("n1", "127.0.0.2", 7001, 7101), NodeSpec("n2", "127.0.0.3", 7002, 7102)]
    secrets = set()
    for i in range(2):
        path = tmp_path / f"c{i}.toml"
        path.write_text(cluster_toml(ClusterSettings(nodes=2, n=2, r=1, w=1), "tok", specs))
        cfg = load_cluster(path)
        assert len(cfg.cluster_secret) == 64 and not cfg.insecure
        secrets.add(cfg.cluster_secret)
    assert len(secrets) == 2
    path = tmp_path / "insecure.toml"
    path.write_text(cluster_toml(ClusterSettings(nodes=2, n=2, r=1, w=1,
                                                 node_settings={"insecure": True}), "tok", specs))
    assert load_cluster(path).insecure
