"""The cluster file (TOML): parsing and validation, with messages that say what is wrong."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.bugs import KNOWN_BUGS

FSYNC_POLICIES = ("always", "os", "none")

# Keys of later issues that a cluster file may already carry; accepted and ignored for now.
FUTURE_CLUSTER_KEYS = frozenset({"resolution"})

# Issue 3's background mechanisms: (setting, default, lowest, highest). Intervals in ms.
BACKGROUND_INTS: dict[str, tuple[int, int, int]] = {
    "gossip_interval_ms": (1000, 10, 600_000),
    "probe_interval_ms": (1000, 10, 600_000),
    "handoff_interval_ms": (1000, 10, 3_600_000),
    "handoff_batch": (200, 1, 100_000),
    "aae_interval_ms": (10_000, 10, 3_600_000),
    "aae_max_keys": (10_000, 1, 10_000_000),
    "tombstone_grace_ms": (60_000, 0, 30 * 86_400_000),
    "reap_interval_ms": (5_000, 10, 3_600_000),
}


# Bounds on what comes from outside (issue 17): (setting, default, lowest, highest). Each is
# documented in docs/node-api.md with what happens when it is exceeded.
LIMIT_INTS: dict[str, tuple[int, int, int]] = {
    "max_siblings": (100, 1, 100_000),            # versions of one key a client write may leave
    "max_sibling_bytes": (4 << 20, 1024, 1 << 30),  # encoded size of one key's sibling set
    "max_context_entries": (1000, 1, 1_000_000),  # actors in a client's context
    "max_key_bytes": (1024, 1, 65_536),
    "max_hints_per_peer": (100_000, 1, 100_000_000),  # hinted keys held for one owner
}


# The node's replication defaults, in this one place of node/ (the harness's copy, which node may
# not import, is checkers/read_your_writes.py's Quorum; tests/test_defaults.py holds them equal).
DEFAULT_N, DEFAULT_R, DEFAULT_W = 3, 2, 2


class ConfigError(ValueError):
    """The cluster file or the command line is wrong; the message says how."""


@dataclass(frozen=True)
class NodeEntry:
    id: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path | None = None
    # where the sockets listen; None: `host` (a wildcard is allowed, never implied)
    bind: str | None = None

    @property
    def bind_host(self) -> str:
        return self.bind if self.bind is not None else self.host


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[NodeEntry, ...]
    n: int = DEFAULT_N
    r: int = DEFAULT_R
    w: int = DEFAULT_W
    q: int = 64
    sloppy_quorum: bool = True
    request_timeout_ms: int = 1000
    data_dir: Path = Path("data")
    fsync: str = "always"
    admin_token: str = ""
    bugs: tuple[str, ...] = ()
    # At most this many entries per version vector, oldest dropped first; 0 = never prune.
    clock_prune_max: int = 0
    max_body_bytes: int = 1 << 20
    max_frame_bytes: int = 16 << 20
    connect_timeout_ms: int = 500
    read_repair: bool = True
    anti_entropy: bool = True
    gossip_interval_ms: int = 1000
    probe_interval_ms: int = 1000
    handoff_interval_ms: int = 1000
    handoff_batch: int = 200
    aae_interval_ms: int = 10_000
    aae_max_keys: int = 10_000
    tombstone_grace_ms: int = 60_000
    reap_interval_ms: int = 5_000
    # issue 17: who may talk to the node, and how much
    name: str = "dynamo"          # the cluster's name, bound into every internode handshake
    cluster_secret: str = ""      # internode HMAC key; "" only with insecure = true (or in-process)
    insecure: bool = False        # internode frames unauthenticated, contexts unsigned
    client_token: str = ""        # when set, /kv needs "Authorization: Bearer <token>"
    admin_reads: str = "open"     # "token": /admin reads need X-Admin-Token too
    max_siblings: int = 100
    max_sibling_bytes: int = 4 << 20
    max_context_entries: int = 1000
    max_key_bytes: int = 1024
    max_hints_per_peer: int = 100_000
    ignored_keys: tuple[str, ...] = field(default=())

    def node(self, node_id: str) -> NodeEntry:
        for entry in self.nodes:
            if entry.id == node_id:
                return entry
        known = ", ".join(e.id for e in self.nodes)
        raise ConfigError(f"node id {node_id!r} is not in the cluster file (known: {known})")

    def node_data_dir(self, node_id: str) -> Path:
        entry = self.node(node_id)
        return entry.data_dir if entry.data_dir is not None else self.data_dir / node_id


def _int(table: dict[str, Any], key: str, default: int, where: str, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {key} must be between {lo} and {hi}, got {value}")
    return value


def _str(table: dict[str, Any], key: str, default: str | None, where: str) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: {key} is required")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _path(raw: str, base: Path) -> Path:
    p = Path(raw)
    return p if p.is_absolute() else (base / p)


def parse_cluster(text: str, base_dir: Path, extra_bugs: tuple[str, ...] = ()) -> ClusterConfig:
    """Parse a cluster file's text; relative paths are taken relative to `base_dir`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cluster file is not valid TOML: {e}") from e
    cluster = doc.get("cluster", {})
    if not isinstance(cluster, dict):
        raise ConfigError("[cluster] must be a table")
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("the cluster file needs at least one [[nodes]] entry")

    nodes: list[NodeEntry] = []
    seen_ids: set[str] = set()
    seen_addrs: set[tuple[str, int]] = set()
    for i, raw in enumerate(raw_nodes):
        where = f"[[nodes]] #{i + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        node_id = _str(raw, "id", None, where)
        if not node_id or not all(c.isalnum() or c in "-_" for c in node_id):
            raise ConfigError(f"{where}: id {node_id!r} must be letters, digits, '-' or '_'")
        if node_id in seen_ids:
            raise ConfigError(f"{where}: duplicate node id {node_id!r}")
        seen_ids.add(node_id)
        where = f"node {node_id}"
        host = _str(raw, "host", None, where)
        client_port = _int(raw, "client_port", -1, where, 1, 65535)
        peer_port = _int(raw, "peer_port", -1, where, 1, 65535)
        for port in (client_port, peer_port):
            if (host, port) in seen_addrs:
                raise ConfigError(f"{where}: address {host}:{port} is used twice")
            seen_addrs.add((host, port))
        node_dir = raw.get("data_dir")
        if node_dir is not None and not isinstance(node_dir, str):
            raise ConfigError(f"{where}: data_dir must be a string")
        bind = raw.get("bind")
        if bind is not None and (not isinstance(bind, str) or not bind):
            raise ConfigError(f"{where}: bind must be a non-empty address string")
        nodes.append(NodeEntry(node_id, host, client_port, peer_port,
                               _path(node_dir, base_dir) if node_dir else None, bind))

    where = "[cluster]"
    count = len(nodes)
    n = _int(cluster, "n", min(DEFAULT_N, count), where, 1, count)
    r = _int(cluster, "r", min(DEFAULT_R, n), where, 1, n)
    w = _int(cluster, "w", min(DEFAULT_W, n), where, 1, n)
    q = _int(cluster, "q", 64, where, 1, 1 << 16)
    if q & (q - 1):
        raise ConfigError(f"{where}: q must be a power of two, got {q}")
    if q < count:
        raise ConfigError(f"{where}: q ({q}) must be at least the number of nodes ({count})")
    flags = {}
    for name in ("sloppy_quorum", "read_repair", "anti_entropy", "insecure"):
        flags[name] = cluster.get(name, name != "insecure")
        if not isinstance(flags[name], bool):
            raise ConfigError(f"{where}: {name} must be true or false")
    sloppy = flags["sloppy_quorum"]
    fsync = _str(cluster, "fsync", "always", where)
    if fsync not in FSYNC_POLICIES:
        choices = ", ".join(FSYNC_POLICIES)
        raise ConfigError(f"{where}: fsync must be one of {choices}, got {fsync!r}")
    bugs_raw = cluster.get("bugs", [])
    if not isinstance(bugs_raw, list) or not all(isinstance(b, str) for b in bugs_raw):
        raise ConfigError(f"{where}: bugs must be a list of strings")
    bugs = tuple(dict.fromkeys([*bugs_raw, *extra_bugs]))
    unknown = [b for b in bugs if b not in KNOWN_BUGS]
    if unknown:
        known = ", ".join(sorted(KNOWN_BUGS)) or "none yet"
        raise ConfigError(f"unknown bug name(s): {', '.join(unknown)} (known: {known})")

    known_keys = {"n", "r", "w", "q", "sloppy_quorum", "request_timeout_ms", "data_dir", "fsync",
                  "admin_token", "bugs", "clock_prune_max", "max_body_bytes", "max_frame_bytes",
                  "connect_timeout_ms", "read_repair", "anti_entropy", *BACKGROUND_INTS,
                  "name", "cluster_secret", "insecure", "client_token", "admin_reads",
                  *LIMIT_INTS}
    ignored = tuple(sorted(k for k in cluster if k not in known_keys))
    typos = [k for k in ignored if k not in FUTURE_CLUSTER_KEYS]
    if typos:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(typos)}")

    request_timeout_ms = _int(cluster, "request_timeout_ms", 1000, where, 1, 3_600_000)
    background = {name: _int(cluster, name, default, where, lo, hi)
                  for name, (default, lo, hi) in BACKGROUND_INTS.items()}
    grace = background["tombstone_grace_ms"]
    if grace < 2 * request_timeout_ms:
        # a read repair or anti-entropy message sent before the reap may still arrive up to a
        # request timeout later and copy the reaped key's old value back
        raise ConfigError(
            f"{where}: tombstone_grace_ms ({grace}) must be at least twice request_timeout_ms "
            f"({request_timeout_ms}), i.e. {2 * request_timeout_ms}: a repair message may "
            "still be in flight that long and would bring a reaped key's old value back")

    limits = {name: _int(cluster, name, default, where, lo, hi)
              for name, (default, lo, hi) in LIMIT_INTS.items()}
    max_frame = _int(cluster, "max_frame_bytes", 16 << 20, where, 1024, 1 << 30)
    if max_frame < 2 * limits["max_sibling_bytes"] + 65_536:
        # a sibling set must always fit in the frame that carries it (the hostile-input probe
        # of issue 17: a 20 MB set broke every connection that carried it)
        raise ConfigError(
            f"{where}: max_frame_bytes ({max_frame}) must be at least twice max_sibling_bytes "
            f"({limits['max_sibling_bytes']}) plus 65536, so that a sibling set always fits in "
            "a frame")
    admin_reads = _str(cluster, "admin_reads", "open", where)
    if admin_reads not in ("open", "token"):
        raise ConfigError(f"{where}: admin_reads must be \"open\" or \"token\", got "
                          f"{admin_reads!r}")
    if admin_reads == "token" and not cluster.get("admin_token"):
        raise ConfigError(f"{where}: admin_reads = \"token\" needs an admin_token")
    name = _str(cluster, "name", "dynamo", where)
    if not name or len(name) > 200:
        raise ConfigError(f"{where}: name must be 1 to 200 characters")
    secret = _str(cluster, "cluster_secret", "", where)
    if flags["insecure"]:
        if secret:
            raise ConfigError(f"{where}: cluster_secret and insecure = true contradict each other")
    elif len(secret) < 16:
        raise ConfigError(
            f"{where}: cluster_secret is required (at least 16 characters; "
            "`python3 -c 'import secrets; print(secrets.token_hex(32))'` makes one): it "
            "authenticates internode frames and client contexts. Set insecure = true to run "
            "without it (anyone who reaches a peer port can then write any data)"
            + (f"; got {len(secret)} characters" if secret else ""))

    return ClusterConfig(
        nodes=tuple(nodes), n=n, r=r, w=w, q=q, sloppy_quorum=sloppy,
        request_timeout_ms=request_timeout_ms,
        data_dir=_path(_str(cluster, "data_dir", "data", where), base_dir),
        fsync=fsync,
        admin_token=_str(cluster, "admin_token", "", where),
        bugs=bugs,
        clock_prune_max=_int(cluster, "clock_prune_max", 0, where, 0, 1 << 20),
        max_body_bytes=_int(cluster, "max_body_bytes", 1 << 20, where, 1024, 1 << 30),
        max_frame_bytes=max_frame,
        connect_timeout_ms=_int(cluster, "connect_timeout_ms", 500, where, 1, 600_000),
        read_repair=flags["read_repair"], anti_entropy=flags["anti_entropy"],
        **background,
        name=name, cluster_secret=secret, insecure=flags["insecure"],
        client_token=_str(cluster, "client_token", "", where),
        admin_reads=admin_reads,
        **limits,
        ignored_keys=ignored,
    )


def load_cluster(path: str | Path, extra_bugs: tuple[str, ...] = ()) -> ClusterConfig:
    """Read and parse the cluster file at `path`."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read cluster file {p}: {e.strerror or e}") from e
    return parse_cluster(text, p.resolve().parent, extra_bugs)
