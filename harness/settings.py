"""A test's settings, and the checks that reject impossible ones before anything starts."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.read_your_writes import DEFAULT_QUORUM
from harness.workloads import WORKLOADS, workload_for  # the one list of workloads, by name
from nemesis.schedule import parse_shapes

PLATFORMS = ("local", "netns", "docker", "sim", "ssh")
FSYNC_POLICIES = ("always", "os", "none")
MAX_LOCAL_NODES = 200  # 127.R.S.2 .. 127.R.S.201


@dataclass
class ClusterSettings:
    """What the store is configured with (the cluster file's [cluster] table). These defaults are
    the flags' defaults too (harness/options.py)."""

    nodes: int = 5
    n: int = DEFAULT_QUORUM.n  # N, R, W and sloppy: the one copy in checkers/read_your_writes.py
    r: int = DEFAULT_QUORUM.r
    w: int = DEFAULT_QUORUM.w
    q: int = 64
    sloppy: bool = DEFAULT_QUORUM.sloppy
    request_timeout_ms: int = 1000
    fsync: str = "always"
    bugs: list[str] = field(default_factory=list)  # seeded defects (docs/bugs.md)
    # extra [cluster] settings passed through to the nodes as they are (--node-setting)
    node_settings: dict[str, Any] = field(default_factory=dict)

    def errors(self) -> list[str]:
        errs = node_settings_errors(self.node_settings)
        errs += [f"--bug {b!r}: a bug name is lowercase letters, digits and '-'"
                 for b in self.bugs if not isinstance(b, str) or not BUG_NAME.fullmatch(b)]
        if self.nodes < 1:
            errs.append(f"--nodes must be at least 1 (got {self.nodes})")
        if self.nodes > MAX_LOCAL_NODES:
            errs.append(f"--nodes must be at most {MAX_LOCAL_NODES} (got {self.nodes})")
        if not 1 <= self.n <= max(self.nodes, 1):
            errs.append(f"--n must be between 1 and --nodes ({self.nodes}); got {self.n}")
        if not 1 <= self.r <= self.n:
            errs.append(f"--r must be between 1 and --n ({self.n}); got {self.r}")
        if not 1 <= self.w <= self.n:
            errs.append(f"--w must be between 1 and --n ({self.n}); got {self.w}")
        if self.q < 1 or self.q & (self.q - 1):
            errs.append(f"--q must be a power of two (got {self.q})")
        if self.q < self.nodes:
            errs.append(f"--q ({self.q}) must be at least --nodes ({self.nodes})")
        if self.request_timeout_ms <= 0:
            errs.append(f"--request-timeout-ms must be positive (got {self.request_timeout_ms})")
        if self.fsync not in FSYNC_POLICIES:
            errs.append(f"--fsync must be one of {', '.join(FSYNC_POLICIES)}")
        return errs

    def extra_toml_lines(self) -> list[str]:
        """The cluster file's `bugs = [...]` and the --node-setting lines, in TOML."""
        lines = [f"bugs = {json.dumps(list(dict.fromkeys(self.bugs)))}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in sorted(self.node_settings.items())]
        return lines


BUG_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SETTING_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# [cluster] keys the harness writes itself, and the flag that sets each
RESERVED_NODE_SETTINGS = {
    "n": "--n", "r": "--r", "w": "--w", "q": "--q", "sloppy_quorum": "--sloppy/--strict",
    "request_timeout_ms": "--request-timeout-ms", "fsync": "--fsync", "bugs": "--bug",
    "data_dir": "the platform", "admin_token": "the platform",
}


def parse_node_setting(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value); true/false, integers and decimals are typed, the rest is a
    string. Raises ValueError saying what is wrong."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=VALUE")
    if raw in ("true", "false"):
        value: Any = raw == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    errs = node_settings_errors({key: value})
    if errs:
        raise ValueError(errs[0])
    return key, value


def node_settings_errors(settings: dict[str, Any]) -> list[str]:
    errs = []
    for key, value in settings.items():
        if not isinstance(key, str) or not SETTING_KEY.fullmatch(key):
            errs.append(f"--node-setting {key!r}: a key is letters, digits and '_'")
        elif key in RESERVED_NODE_SETTINGS:
            errs.append(f"--node-setting {key}: set it with {RESERVED_NODE_SETTINGS[key]}")
        elif isinstance(value, float) and value != value:  # NaN has no TOML spelling here
            errs.append(f"--node-setting {key}: not a number")
        elif not isinstance(value, bool | int | float | str):
            errs.append(f"--node-setting {key}: the value must be a boolean, number or string "
                        f"(got {type(value).__name__})")
    return errs


def toml_value(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


@dataclass
class TestSettings:
    """Everything that defines one test run; written to test.json."""

    __test__ = False  # not a pytest class, despite the name

    workload: str = "cart"
    nemesis: list[str] = field(default_factory=list)
    platform: str = "local"
    store: str = "dynamo"  # harness/stores/__init__.py
    store_options: list[str] = field(default_factory=list)  # --store-option NAME
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 100.0
    keys: int = 10
    #: rotate keys after this many operations each (harness/workloads/keys.py); 0: the same keys
    #: all run; None: the workload's default (rotation is on for cart, register, cas-register)
    ops_per_key: int | None = None
    nemesis_interval: float = 5.0  # short: faults start and end often
    nemesis_jitter: float = 0.5  # fault periods and gaps scaled by U(1 - j, 1 + j)
    partitions: list[str] = field(default_factory=list)  # partition shapes; empty: every shape
    seed: int = 0
    quiesce_timeout: float = 15.0
    out: Path = Path("reports")
    leave_running: bool = False
    #: a schedule file (`harness hunt` writes them) played instead of the seeded plan
    schedule: str | None = None
    # the ssh platform (harness/platforms/ssh.py): the hosts file and how host keys are checked
    hosts: str | None = None
    known_hosts: str | None = None
    insecure_accept_host_keys: bool = False

    @property
    def client_timeout_s(self) -> float:
        # longer than the node's own request timeout, so a quorum failure comes back as a 503
        return self.cluster.request_timeout_ms / 1000 + 1.5

    def __post_init__(self) -> None:
        from harness.stores import STORES

        store = STORES.get(self.store)
        if store is not None:
            self.workload = workload_for(self.workload, store.client_class.ops)
        if store is not None and store.takes_node_settings:
            given = self.cluster.node_settings
            self.cluster.node_settings = {**store.test_node_settings(self.cluster), **given}

    @property
    def rotate_every(self) -> int:
        """Operations per key before it retires (0: never): the setting, else the workload's."""
        if self.ops_per_key is not None:
            return self.ops_per_key
        cls = WORKLOADS.get(self.workload)
        return cls.default_ops_per_key if cls is not None else 0

    @property
    def name(self) -> str:
        test = f"{self.workload}-{'+'.join(self.nemesis) or 'none'}"
        return test if self.store == "dynamo" else f"{self.store}-{test}"

    def errors(self) -> list[str]:
        errs = self.cluster.errors()
        if self.workload not in WORKLOADS:
            errs.append(f"unknown workload {self.workload!r}; choose from {', '.join(WORKLOADS)}")
        if self.platform not in PLATFORMS:
            errs.append(f"unknown platform {self.platform!r}; available: {', '.join(PLATFORMS)}")
        else:
            from harness.stores import store_errors

            errs += store_errors(self.store, self.workload, self.nemesis, self.platform,
                                 self.store_options, self.cluster, self.partitions)
        if self.time_limit <= 0:
            errs.append(f"--time-limit must be positive (got {self.time_limit})")
        if self.concurrency < 1:
            errs.append(f"--concurrency must be at least 1 (got {self.concurrency})")
        if self.rate <= 0:
            errs.append(f"--rate must be positive (got {self.rate})")
        if self.keys < 1:
            errs.append(f"--keys must be at least 1 (got {self.keys})")
        if self.ops_per_key is not None and self.ops_per_key < 0:
            errs.append(f"--ops-per-key must not be negative (got {self.ops_per_key})")
        try:
            parse_shapes(",".join(self.partitions))
        except ValueError as e:
            errs.append(f"--partitions: {e}")
        if self.nemesis_interval <= 0:
            errs.append(f"--nemesis-interval must be positive (got {self.nemesis_interval})")
        if not 0 <= self.nemesis_jitter < 1:
            errs.append(f"--nemesis-jitter must be at least 0 and below 1 "
                        f"(got {self.nemesis_jitter})")
        if self.platform == "sim" and self.leave_running:
            errs.append("--leave-running: a simulated cluster lives only inside its run "
                        "(use `harness cluster up` for one to watch)")
        if self.schedule is not None:
            from harness.schedule_file import load_schedule

            try:
                _, named = load_schedule(self.schedule)
            except ValueError as e:
                errs.append(f"--schedule: {e}")
            else:
                ids = {f"n{i}" for i in range(1, self.cluster.nodes + 1)}
                if set(named) - ids:
                    errs.append(f"--schedule names nodes {', '.join(sorted(set(named) - ids))}"
                                f", not in this {self.cluster.nodes}-node cluster")
        if self.quiesce_timeout < 0:
            errs.append(f"--quiesce-timeout must not be negative (got {self.quiesce_timeout})")
        if "wipe" in self.nemesis:
            errs += self._wipe_repair_errors()
        return errs

    def _wipe_repair_errors(self) -> list[str]:
        """A wiped node is safe to lose only where the store repairs it: anti-entropy rebuilds
        its keys, and hinted handoff delivers, before the final reads, the writes a fallback
        holds for it (a write acknowledged by the wiped node and one fallback lives on only in
        that fallback's hint). A test that turns either off would call the correct store
        invalid."""
        settings = self.cluster.node_settings
        errs = []
        if settings.get("anti_entropy") is False:
            errs.append("the wipe nemesis needs anti-entropy (node setting anti_entropy = false): "
                        "nothing else rebuilds a node that lost its disk")
        interval = settings.get("handoff_interval_ms")
        if isinstance(interval, int | float) and interval > self.quiesce_timeout * 1000:
            errs.append(f"the wipe nemesis needs hinted handoff delivered before the final reads: "
                        f"handoff_interval_ms = {interval} is longer than --quiesce-timeout "
                        f"({self.quiesce_timeout:g} s), and a write acknowledged by the wiped "
                        "node and a fallback lives on only in the fallback's hint")
        return errs

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["out"] = str(self.out)
        out["ops_per_key"] = self.rotate_every
        out["name"] = self.name
        return out
