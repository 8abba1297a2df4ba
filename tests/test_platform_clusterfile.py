"""The cluster file every platform writes is one the node accepts, with bugs and node settings."""

import tomllib
from pathlib import Path

from harness.platforms.clusterfile import cluster_toml
from harness.platforms.local import NodeSpec
from harness.settings import ClusterSettings
from node.config import load_cluster


def test_cluster_file_carries_bugs_and_node_settings_and_the_node_accepts_it(tmp_path: Path):
    cluster = ClusterSettings(nodes=2, n=2, r=1, w=2, sloppy=False, bugs=["lww"],
                              node_settings={"read_repair": False, "aae_interval_ms": 500})
    specs = [NodeSpec("n1", "127.0.0.2", 7001, 7101), NodeSpec("n2", "127.0.0.3", 7002, 7102)]
    text = cluster_toml(cluster, "tok", specs)
    doc = tomllib.loads(text)
    assert doc["cluster"]["bugs"] == ["lww"]
    assert doc["cluster"]["read_repair"] is False and doc["cluster"]["aae_interval_ms"] == 500
    assert doc["cluster"]["sloppy_quorum"] is False and doc["cluster"]["admin_token"] == "tok"
    assert [n["id"] for n in doc["nodes"]] == ["n1", "n2"]

    path = tmp_path / "cluster.toml"
    path.write_text(text)
    config = load_cluster(path)  # the node's own parser: what the platforms write must load
    assert "lww" in config.bugs
