"""What the reference node would refuse in a suite's node settings, found before anything runs.

A suite test's `node_settings` go into the nodes' cluster file, and only the node knows every
setting it takes; the harness may not import it (node is a program to the harness), so each
distinct set of settings is written into a cluster file and handed to `dynamo-node --check`.
`harness suite --dry-run` and the real suite then refuse the same keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.platforms.clusterfile import cluster_toml
from harness.settings import ClusterSettings
from harness.stores import DEFAULT_STORE, STORES
from harness.suite import CLUSTER_KEYS

ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_S = 60.0


class _Spec:
    def __init__(self, i: int) -> None:
        self.id, self.host = f"n{i}", "127.0.0.1"
        self.client_port, self.peer_port = 20000 + 2 * i, 20001 + 2 * i


def node_settings_refusals(tests: list[Any]) -> list[str]:
    """One message per test whose node settings the node refuses (same settings checked once)."""
    seen: dict[str, str | None] = {}
    out = []
    for t in tests:
        settings = t.settings
        store = STORES.get(str(settings.get("store", DEFAULT_STORE)))
        if store is None or not store.takes_node_settings or not settings.get("node_settings"):
            continue
        cluster = ClusterSettings(**{k: settings[k] for k in CLUSTER_KEYS if k in settings},
                                  bugs=list(settings.get("bugs", [])),
                                  node_settings=dict(settings["node_settings"]))
        key = json.dumps(asdict(cluster), sort_keys=True, default=str)
        if key not in seen:
            seen[key] = _refusal(cluster)
        if seen[key]:
            out.append(f"test {t.name!r}: node_settings: the node refuses them: {seen[key]}")
    return out


def _refusal(cluster: ClusterSettings) -> str | None:
    specs = [_Spec(i + 1) for i in range(max(cluster.nodes, 1))]
    with tempfile.TemporaryDirectory(prefix="suite-check-") as tmp:
        path = Path(tmp) / "cluster.toml"
        path.write_text(cluster_toml(cluster, "check", specs), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        try:
            proc = subprocess.run([sys.executable, "-m", "node", "--cluster", str(path),
                                   "--id", "n1", "--check"], capture_output=True, text=True,
                                  timeout=CHECK_TIMEOUT_S, env=env, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"could not run the node's check: {e}"
    if proc.returncode == 0:
        return None
    return proc.stderr.strip().removeprefix("dynamo-node: ") or f"exit {proc.returncode}"
