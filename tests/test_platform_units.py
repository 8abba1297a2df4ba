"""The real platforms' pure parts: iptables/netem scripts, subnet claims, the cluster file."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from harness.platforms import iptables, netalloc
from harness.platforms.base import PlatformError
from harness.platforms.clusterfile import cluster_toml
from harness.platforms.local import NodeSpec
from harness.settings import ClusterSettings
from node.config import load_cluster


def test_partition_script_drops_only_the_given_sources_in_our_chain() -> None:
    script = iptables.partition_script(["198.18.5.12", "198.18.5.13", "198.18.5.12"])
    rules = [line for line in script.splitlines() if " -A " in line]
    assert rules == ["iptables -w 5 -A DJ-PART -s 198.18.5.12 -j DROP",
                     "iptables -w 5 -A DJ-PART -s 198.18.5.13 -j DROP"]
    assert "-F DJ-PART" in script and "-I INPUT 1 -j DJ-PART" in script
    # never flushes or touches a built-in chain
    assert "-F INPUT" not in script and "-F\n" not in script and " -P " not in script


def test_empty_partition_is_the_heal_script() -> None:
    assert iptables.partition_script([]) == iptables.heal_script()
    heal = iptables.heal_script()
    assert "-D INPUT -j DJ-PART" in heal and "-X DJ-PART" in heal


def test_partition_script_rejects_what_is_not_an_address() -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        iptables.partition_script(["198.18.0.1; rm -rf /"])


def test_netem_script() -> None:
    assert iptables.netem_script("eth0", 100, 10, 5) == (
        "set -e\ntc qdisc replace dev eth0 root netem delay 100ms 10ms loss 5%\n")
    assert iptables.netem_script("eth0", loss_percent=2.5).endswith("netem loss 2.5%\n")
    assert iptables.netem_script("eth0") == iptables.netem_heal_script("eth0")
    with pytest.raises(ValueError, match="loss must be"):
        iptables.netem_script("eth0", loss_percent=150)


@pytest.mark.skipif(subprocess.run(["sh", "-n", "/dev/null"]).returncode != 0,
                    reason="no sh to parse scripts")
def test_scripts_are_valid_shell(tmp_path: Path) -> None:
    for script in (iptables.partition_script(["198.18.1.11"]), iptables.heal_script(),
                   iptables.list_script(), iptables.netem_script("eth0", 5),
                   iptables.netem_heal_script("eth0")):
        f = tmp_path / "s.sh"
        f.write_text(script)
        assert subprocess.run(["sh", "-n", str(f)]).returncode == 0, script


def test_subnet_addresses_stay_in_the_benchmark_range() -> None:
    net = netalloc.Subnet(7)
    assert net.cidr == "198.18.7.0/24" and net.gateway == "198.18.7.1"
    assert net.node_address(0) == "198.18.7.11"
    reserved = ipaddress.ip_network("198.18.0.0/15")
    for n in (netalloc.FIRST_N, netalloc.LAST_N):
        sub = netalloc.Subnet(n)
        assert ipaddress.ip_network(sub.cidr).subnet_of(reserved)
        assert ipaddress.ip_address(sub.node_address(netalloc.MAX_NODES - 1)) in \
            ipaddress.ip_network(sub.cidr)
    with pytest.raises(ValueError, match="at most"):
        net.node_address(netalloc.MAX_NODES)


def test_covered_24s() -> None:
    assert netalloc._covered_24s(ipaddress.ip_network("198.18.9.0/24")) == [9]
    assert netalloc._covered_24s(ipaddress.ip_network("198.18.8.0/23")) == [8, 9]
    assert netalloc._covered_24s(ipaddress.ip_network("198.19.0.0/16")) == []
    assert netalloc._covered_24s(ipaddress.ip_network("127.0.0.0/8")) == []


def test_claims_are_exclusive_and_released_only_by_their_owner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netalloc.CLAIM_DIR_ENV, str(tmp_path))
    a = netalloc.claim_subnet("session-a")
    b = netalloc.claim_subnet("session-b")
    assert a.n != b.n
    netalloc.release_subnet(a.n, "session-b")  # not b's claim: kept
    assert (tmp_path / str(a.n)).exists()
    netalloc.release_subnet(a.n, "session-a")
    assert not (tmp_path / str(a.n)).exists()


def test_a_claim_whose_owner_died_is_reclaimed(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netalloc.CLAIM_DIR_ENV, str(tmp_path))
    busy = netalloc.subnets_in_use()
    free = [n for n in range(netalloc.FIRST_N, netalloc.LAST_N + 1) if n not in busy]
    dead = subprocess.Popen(["true"])
    dead.wait()
    for n in free:  # every free subnet held by a process that no longer exists
        (tmp_path / str(n)).write_text(json.dumps({"owner": "gone", "pid": dead.pid,
                                                   "create_time": 1.0}))
    got = netalloc.claim_subnet("new-owner")
    assert got.n in free
    assert json.loads((tmp_path / str(got.n)).read_text())["owner"] == "new-owner"


def test_cluster_file_is_what_the_node_accepts(tmp_path: Path) -> None:
    specs = [NodeSpec(f"n{i}", f"198.18.3.{10 + i}", 8000, 9000) for i in (1, 2, 3)]
    settings = ClusterSettings(nodes=3, n=3, r=2, w=2, q=16, sloppy=False, fsync="os")
    path = tmp_path / "cluster.toml"
    path.write_text(cluster_toml(settings, 'to"ken', specs))
    config = load_cluster(str(path), ())
    assert [n.id for n in config.nodes] == ["n1", "n2", "n3"]
    assert config.node("n2").host == "198.18.3.12"
    assert config.node_data_dir("n3") == tmp_path / "n3" / "data"


def test_netns_needs_its_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.platforms.netns import require_netns_tools

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(PlatformError, match="iptables"):
        require_netns_tools()
