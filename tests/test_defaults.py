"""One copy of each default the harness uses, and the node's own copy held equal to it.

N, R, W and sloppy live in `checkers.read_your_writes.Quorum` (checkers may not import harness);
`harness.settings.ClusterSettings` and every flag take them from there. The node may import
none of the others, so node/config.py keeps its own; this test is what keeps them equal.
"""

from __future__ import annotations

from pathlib import Path

import click

from checkers.read_your_writes import DEFAULT_QUORUM, Quorum
from checkers.registry import DEFAULTS, quorum_from_test
from harness.run_cmd import run
from harness.settings import ClusterSettings, TestSettings
from harness.workloads import WORKLOADS
from node.config import ClusterConfig, parse_cluster

FIVE_NODES = "\n".join(
    f'[[nodes]]\nid = "n{i}"\nhost = "127.0.0.{i + 1}"\nclient_port = {8000 + i}\n'
    f"peer_port = {9000 + i}\n" for i in range(1, 6))


def test_harness_cluster_defaults_are_the_checkers_quorum() -> None:
    c = ClusterSettings()
    assert Quorum(c.n, c.r, c.w, c.sloppy) == DEFAULT_QUORUM
    assert quorum_from_test({}) == DEFAULT_QUORUM  # a test.json without them


def test_the_node_defaults_equal_the_harness_defaults(tmp_path: Path) -> None:
    parsed = parse_cluster("[cluster]\ninsecure = true\n" + FIVE_NODES, tmp_path)
    c = ClusterSettings()
    for cfg in (parsed, ClusterConfig(nodes=())):
        assert (cfg.n, cfg.r, cfg.w, cfg.sloppy_quorum) == (c.n, c.r, c.w, c.sloppy)
        assert (cfg.q, cfg.request_timeout_ms, cfg.fsync) == (c.q, c.request_timeout_ms, c.fsync)


def test_the_flags_defaults_are_the_settings_defaults() -> None:
    ctx = click.Context(run)
    defaults = {p.name: p.get_default(ctx) for p in run.params}
    c = ClusterSettings()
    for name in ("nodes", "n", "r", "w", "q", "sloppy", "request_timeout_ms", "fsync"):
        assert defaults[name] == getattr(c, name), name


def test_one_list_of_workloads_and_checker_defaults_for_each() -> None:
    ctx = click.Context(run)
    workload = next(p for p in run.params if p.name == "workload")
    assert list(workload.type.choices) == list(WORKLOADS)
    assert workload.get_default(ctx) == TestSettings.workload
    assert TestSettings(workload="nope").errors()[0].startswith("unknown workload 'nope'")
    assert set(WORKLOADS) <= set(DEFAULTS)  # checkers/registry.py: each workload's checkers


def test_a_test_run_gives_the_reference_store_timers_that_act_within_a_run() -> None:
    timers = TestSettings().cluster.node_settings
    assert timers == {"tombstone_grace_ms": 3000, "reap_interval_ms": 1000,
                      "aae_interval_ms": 2000}
    # the node refuses a grace below twice the request timeout
    slow = TestSettings(cluster=ClusterSettings(request_timeout_ms=2500))
    assert slow.cluster.node_settings["tombstone_grace_ms"] == 5000
    mine = TestSettings(cluster=ClusterSettings(node_settings={"aae_interval_ms": 700}))
    assert mine.cluster.node_settings["aae_interval_ms"] == 700  # the user's setting wins
    assert TestSettings(store="etcd", workload="cas-register").cluster.node_settings == {}
    assert TestSettings().errors() == []
