"""The store interface: what runs on each host, and which client speaks to it.

A platform provides hosts and hurts them; a store says how one system is laid out and started on
them and when a node is ready; its client turns the workloads' abstract operations into the
store's protocol (`harness.client.Client`). Further abilities are small optional capabilities
below, which the harness finds with `isinstance`, never by a store's name.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from harness.client import Client
from harness.platforms.base import NodeSpec
from harness.settings import ClusterSettings

ALL_FAULTS = frozenset({"partition", "clock", "crash", "pause", "packet", "power", "wipe"})


class Store(ABC):
    """One system under test. Required: `layout` (files before any node starts), `command` (how
    a node runs, in the foreground), `is_ready` and `client`. The class attributes say what the
    store can be asked for, so that impossible tests are refused before anything starts."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    client_class: ClassVar[type[Client]] = Client
    #: nemesis faults this store can be tested under, and why not the others
    faults: ClassVar[frozenset[str]] = ALL_FAULTS
    unsupported_faults: ClassVar[dict[str, str]] = {}
    #: platforms it runs on
    platforms: ClassVar[tuple[str, ...]] = ("local",)
    #: store options (`--store-option NAME`) and what each does
    options: ClassVar[dict[str, str]] = {}
    #: what `is_ready` asks, for error messages
    ready_probe: ClassVar[str] = "a readiness probe"
    #: whether the nodes take the cluster settings --bug and --node-setting write
    takes_node_settings: ClassVar[bool] = False
    #: Jepsen binds each worker to one node, so a process replacing one that ended `info` keeps
    #: its node, and every node keeps its clients all run (a node cut off from the majority,
    #: a primary whose WAITs time out, keep being asked)
    bind_workers_to_nodes: ClassVar[bool] = True

    def __init__(self, cluster: ClusterSettings, options: Sequence[str] = ()) -> None:
        self.cluster = cluster
        self.option_names = frozenset(options)

    @property
    def ops(self) -> frozenset[str]:
        """The abstract operations this store's client performs."""
        return self.client_class.ops

    @classmethod
    def missing(cls) -> str | None:
        """Why this store cannot run on this machine (a program not installed), or None."""
        return None

    @abstractmethod
    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        """Write what the nodes need before any of them starts, under `root` (node `i`'s folder
        is `root / spec.id`)."""

    @abstractmethod
    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        """The argv that runs one node in the foreground, logging to stdout/stderr. Restarting
        a killed node runs it again with the same data."""

    def admin_headers(self) -> dict[str, str]:
        """Headers the nodes' admin reads need (the reference store: its admin token)."""
        return {}

    @abstractmethod
    def is_ready(self, spec: NodeSpec) -> bool:
        """One bounded probe: does the node serve clients now?"""

    def client(self, session: aiohttp.ClientSession, node: str, url: str,
               timeout_s: float, final: bool = False) -> Client:
        """A client for one node, sharing the worker's session; `final`: for the final reads,
        after the heal (a store may ask more of them)."""
        return self.client_class(session, node, url, timeout_s)

    @classmethod
    def test_node_settings(cls, cluster: ClusterSettings) -> dict[str, Any]:
        """Node settings a test run uses unless the user sets them (recorded in test.json):
        timers short enough that the store's background mechanisms act within a run."""
        return {}

    def copies(self) -> int:
        """How many nodes hold each key: `crash-many` kills one fewer. By default every node
        holds everything (Raft, primary and replicas)."""
        return self.cluster.nodes

    def data_paths(self, spec: NodeSpec, root: Path) -> list[Path] | None:
        """Everything one node keeps on disk (its data, hints, identity), under `root` on the
        harness's machine: what the wipe nemesis deletes. None: not known (wipe is refused)."""
        return None

    def version(self) -> str | None:
        """The store's version, for test.json."""
        return None

    def settled(self, specs: Sequence[NodeSpec]) -> bool:
        """After the heal: has the cluster settled enough for the final reads? (one bounded
        probe; the runner polls it up to the quiesce timeout). By default: every node ready."""
        return all(self.is_ready(s) for s in specs)


class SelfPartitioning(ABC):
    """A store that can drop its peers' messages itself (the reference node's transport does);
    on the local platform this stands in for packet filtering."""

    partition_mechanism: ClassVar[str] = ""

    @abstractmethod
    def drop_from(self, spec: NodeSpec, peers: Sequence[NodeSpec]) -> str | None:
        """Make the node drop everything from `peers` (none: heal); an error message, or None."""


class FinalState(ABC):
    """A store that can show every replica's final state, for the convergence checker."""

    @abstractmethod
    async def final_state(self, urls: Sequence[str], keys: Sequence[str], timeout_s: float,
                          now: Callable[[], int]) -> tuple[int | None, dict[str, Any]]:
        """Wait (bounded) until every key's replicas agree: (history time they first did, or
        None; the last view of each key)."""

    @abstractmethod
    def replicas_document(self, heal_time: int | None, converged_time: int | None,
                          views: dict[str, Any]) -> dict[str, Any]:
        """`replicas.json` for the convergence checker."""


class NodeCounters:
    """A store whose nodes answer counters (JSON integers) at `/admin/stats` (`stats.jsonl`)."""

    async def wait_hints_drained(self, urls: dict[str, str], timeout_s: float,
                                 now: Callable[[], int]) -> dict[str, Any] | None:
        """After heal, wait (bounded) until no node holds a hint (harness/quiesce.py)."""
        from harness import quiesce

        headers = self.admin_headers()  # type: ignore[attr-defined] (mixed into a Store)
        async with aiohttp.ClientSession(headers=headers) as session:
            async def count(node: str) -> int | None:
                return await quiesce.fetch_hints(session, urls[node], 2.0)

            return await quiesce.wait_hints_drained(list(urls), count, timeout_s, now)


class Sidecars(ABC):
    """A store with helper processes beside its nodes (Redis Sentinel). The platform starts them
    once every node is ready and stops them at teardown; they run on their node's host (and, on
    the local platform, in its group, so partitions cut them off too), but crashes and pauses
    are for the nodes only."""

    @abstractmethod
    def sidecars(self, spec: NodeSpec, root: Path) -> dict[str, list[str]]:
        """name -> argv of each helper beside this node (none: an empty dict)."""


class Roles(ABC):
    """A store whose nodes hold roles that a nemesis may aim at (Redis: the primary), for the
    partition shapes of `nemesis.grudges.TARGETED`."""

    roles: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def holder(self, role: str, specs: Sequence[NodeSpec]) -> str | None:
        """The node that holds `role` now, or None when it cannot be told (bounded)."""


def version_output(binary: str) -> str:
    """What `binary --version` prints, or "" when it cannot run."""
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True,
                              timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
