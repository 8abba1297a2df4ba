"""The reference Dynamo store (`node/`), as one store among others.

Its client (`harness.client.NodeClient`) hands siblings and their causal context to the
workloads, which record them as extra history fields; its transport can drop peers' frames by
itself (the local platform's simulated partitions); `/admin/replicas` shows every replica's final
state for the convergence checker; `/admin/stats` gives the counters of `stats.jsonl`.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import requests

from harness import quiesce
from harness.client import Client, NodeClient
from harness.platforms.base import ADMIN_TIMEOUT_S, NodeSpec
from harness.platforms.clusterfile import cluster_toml
from harness.settings import ClusterSettings
from harness.stores.base import ALL_FAULTS, FinalState, NodeCounters, SelfPartitioning, Store

CLUSTER_FILE = "cluster.toml"
TEST_TOMBSTONE_GRACE_MS = 3000


class DynamoStore(Store, SelfPartitioning, FinalState, NodeCounters):
    name = "dynamo"
    description = "the reference Dynamo store in node/ (siblings, vector clocks, sloppy quorum)"
    client_class = NodeClient
    faults = ALL_FAULTS
    platforms = ("local", "netns", "docker", "sim", "ssh")
    ready_probe = "/admin/status"
    partition_mechanism = ("simulated in the node transport (PUT /admin/faults/partition drops "
                           "internode frames; no real network fault)")
    takes_node_settings = True
    # a replacement process moves to node `process % nodes`: the smoke suite's expectations
    # were measured that way, so the reference store keeps it
    bind_workers_to_nodes = False

    def __init__(self, cluster: ClusterSettings, options: Sequence[str] = (),
                 token: str | None = None) -> None:
        super().__init__(cluster, options)
        self.token = token or secrets.token_hex(16)

    @classmethod
    def test_node_settings(cls, cluster: ClusterSettings) -> dict[str, Any]:
        # With the node's own defaults a tombstone outlives a 30 s run (60 s grace) and
        # anti-entropy runs twice: the reaper and the Merkle exchange would never be tested.
        # The grace stays at least twice the request timeout, as the node requires.
        return {"tombstone_grace_ms": max(TEST_TOMBSTONE_GRACE_MS, 2 * cluster.request_timeout_ms),
                "reap_interval_ms": 1000, "aae_interval_ms": 2000}

    def copies(self) -> int:
        return self.cluster.n

    def data_paths(self, spec: NodeSpec, root: Path) -> list[Path] | None:
        # the SQLite file and its WAL: sibling sets, hints, the dot lease and the incarnation
        # (so a wiped node restarts as a new actor); the cluster file and log stay
        return [root / spec.id / "data"]

    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        (root / CLUSTER_FILE).write_text(cluster_toml(self.cluster, self.token, specs),
                                         encoding="utf-8")

    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        return [sys.executable, "-m", "node", "--cluster", str(root / CLUSTER_FILE),
                "--id", spec.id]

    def admin_headers(self) -> dict[str, str]:
        return {"X-Admin-Token": self.token}

    def is_ready(self, spec: NodeSpec) -> bool:
        try:
            resp = requests.get(f"{spec.url}/admin/status", headers=self.admin_headers(),
                                timeout=ADMIN_TIMEOUT_S)
            return resp.status_code == 200 and resp.json() is not None
        except (requests.RequestException, ValueError):
            return False

    def client(self, session: aiohttp.ClientSession, node: str, url: str,
               timeout_s: float, final: bool = False) -> Client:
        # a final read must see the replicas, not fallbacks standing in for a primary its
        # coordinator still thinks down or slow (they hold nothing, and answer at once): R
        # primaries, as Riak's pr; a node that cannot gather them answers 503 and the next is
        # asked
        params = {"pr": str(self.cluster.r)} if final else None
        return NodeClient(session, node, url, timeout_s, params)

    def drop_from(self, spec: NodeSpec, peers: Sequence[NodeSpec]) -> str | None:
        url = f"{spec.url}/admin/faults/partition"
        headers = {"X-Admin-Token": self.token}
        drop = [p.id for p in peers]
        try:
            if drop:
                resp = requests.put(url, json={"drop_from": drop}, headers=headers,
                                    timeout=ADMIN_TIMEOUT_S)
            else:
                resp = requests.delete(url, headers=headers, timeout=ADMIN_TIMEOUT_S)
        except requests.RequestException as e:
            return f"{type(e).__name__}: {e}"
        if resp.status_code >= 300:
            return f"HTTP {resp.status_code}: {resp.text[:200]}"
        return None

    async def final_state(self, urls: Sequence[str], keys: Sequence[str], timeout_s: float,
                          now: Callable[[], int]) -> tuple[int | None, dict[str, Any]]:
        return await quiesce.wait_converged(urls, keys, timeout_s, now,
                                            headers=self.admin_headers())

    def replicas_document(self, heal_time: int | None, converged_time: int | None,
                          views: dict[str, Any]) -> dict[str, Any]:
        return quiesce.replicas_document(heal_time, converged_time, views)
