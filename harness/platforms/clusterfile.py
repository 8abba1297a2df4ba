"""The cluster file (docs/node-api.md) for a list of node specs: a pure function, any platform."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Protocol

from harness.settings import ClusterSettings


class Spec(Protocol):
    id: str
    host: str
    client_port: int
    peer_port: int


def cluster_toml(cluster: ClusterSettings, token: str, specs: Sequence[Spec],
                 secret: str | None = None) -> str:
    """`[cluster]` from the settings and one `[[nodes]]` per spec; data in `<id>/data`.
    `secret` authenticates the nodes to each other (node/peerauth.py); None makes a fresh one,
    so every run (every cluster file written) has its own. A --node-setting of
    `cluster_secret` or `insecure` takes its place. Admin reads need the token too
    (`admin_reads = "token"`) unless a --node-setting says otherwise."""
    own = {"cluster_secret", "insecure"} & set(cluster.node_settings)
    if secret is None:
        secret = secrets.token_hex(32)
    lines = [
        "[cluster]",
        f"n = {cluster.n}",
        f"r = {cluster.r}",
        f"w = {cluster.w}",
        f"q = {cluster.q}",
        f"sloppy_quorum = {'true' if cluster.sloppy else 'false'}",
        f"request_timeout_ms = {cluster.request_timeout_ms}",
        'data_dir = "."',
        f"fsync = {json.dumps(cluster.fsync)}",
        f"admin_token = {json.dumps(token)}",
        *([] if "admin_reads" in cluster.node_settings else ['admin_reads = "token"']),
        *([] if own else [f"cluster_secret = {json.dumps(secret)}"]),
        *cluster.extra_toml_lines(),  # bugs = [...] and --node-setting lines
    ]
    for s in specs:
        lines += ["", "[[nodes]]", f"id = {json.dumps(s.id)}", f"host = {json.dumps(s.host)}",
                  f"client_port = {int(s.client_port)}", f"peer_port = {int(s.peer_port)}",
                  f"data_dir = {json.dumps(s.id + '/data')}"]
    return "\n".join(lines) + "\n"
