"""The platform interface: how a cluster is started, stopped and hurt on one kind of host.

The nemesis decides what and when; a platform does the how. Every method is synchronous and
bounded in time; the runner calls them from worker threads.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from harness.state import Session
    from harness.stores.base import Store

Grudge = Mapping[str, Set[str]]  # node -> nodes whose frames it drops
ADMIN_TIMEOUT_S = 1.0
CLOCK_READS = 5  # read_clock_offsets: at most this many reads per node...
CLOCK_GOOD_RTT_S = 0.02  # ...stopping at one whose round trip bounds the error to 10 ms
WIPE_MECHANISM = ("SIGKILL of the node process, then everything its store keeps for it deleted "
                  "from the run's nodes/ folder on the host (data, hints, identity; the folder "
                  "fsynced), restarted empty by the harness")


class PlatformError(RuntimeError):
    """The platform could not do what was asked (a node did not start, a tool is missing...)."""


class Platform(ABC):
    name: str = ""
    #: how long a starting node may take to answer its readiness probe
    ready_timeout_s: float = 20.0
    ready_probe: str = "/admin/status"
    #: what the store's admin reads need (`Store.admin_headers`); set with the store
    admin_headers: dict[str, str] = {}  # noqa: RUF012 (replaced, never mutated)
    #: fault -> how this platform produces it, in words for the report
    mechanisms: dict[str, str] = {}

    @abstractmethod
    def node_ids(self) -> list[str]:
        """The cluster's node ids, in order."""

    @abstractmethod
    def client_url(self, node: str) -> str:
        """`http://host:port` of the node's client API."""

    @abstractmethod
    def start(self) -> None:
        """Start every node and return once each answers its readiness probe."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every node this platform started (teardown); idempotent."""

    @abstractmethod
    def kill(self, node: str) -> None:
        """Kill the node abruptly (kill -9)."""

    @abstractmethod
    def restart(self, node: str) -> None:
        """Start a killed node again and wait until it answers."""

    #: the nodes' faultfs data directories (harness.platforms.faultdisks), when the power
    #: nemesis is on
    disks: Any = None

    def power_cut(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        """Kill the nodes (kill -9), then drop whatever their disks hold unsynced (the power
        nemesis); per node, what was dropped (or {"error": ...}). Restarted by `restart`."""
        if self.disks is None:
            raise PlatformError("the power nemesis needs the cluster started with faultfs "
                                "(choose the power nemesis on the local, netns or docker "
                                "platform)")
        return self._kill_then(nodes, self.disks.cut)

    def wipe(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        """Kill the nodes (kill -9), then delete everything the store keeps on disk for each
        (the wipe nemesis: a disk replaced); per node, what was deleted (or {"error": ...}).
        `restart` starts them empty: for the reference store, a new incarnation (actor)."""
        raise PlatformError(f"the {self.name} platform cannot wipe a node's data")

    def _kill_then(self, nodes: list[str],
                   disk_fault: Callable[[str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Kill every node first (as when the power goes), then hurt each one's disk."""
        for node in nodes:
            self.kill(node)
        out: dict[str, dict[str, Any]] = {}
        for node in nodes:
            try:
                out[node] = disk_fault(node)
            except (PlatformError, OSError) as e:
                out[node] = {"error": str(e)}
        return out

    @abstractmethod
    def pause(self, node: str) -> None:
        """Freeze the node (SIGSTOP)."""

    @abstractmethod
    def resume(self, node: str) -> None:
        """Unfreeze the node (SIGCONT)."""

    @abstractmethod
    def partition(self, grudge: Grudge) -> dict[str, str]:
        """Make each node drop frames from the nodes in its grudge; returns per-node errors."""

    @abstractmethod
    def heal_partition(self) -> dict[str, str]:
        """End every partition; returns per-node errors."""

    @abstractmethod
    def set_clock_offset(self, node: str, seconds: float) -> None:
        """Offset the node's wall clock by `seconds` from the true time."""

    @abstractmethod
    def reset_clocks(self) -> None:
        """Put every node's clock back to the true time."""

    @abstractmethod
    def read_clock_offsets(self) -> dict[str, float | None]:
        """Each node's measured clock offset in seconds (None when it did not answer)."""

    @abstractmethod
    def node_dir(self, node: str) -> Path:
        """Where the node's log (and perhaps data) lives."""

    @abstractmethod
    def pids(self) -> dict[str, int]:
        """OS process ids of the running nodes (for resource sampling)."""

    def test_info(self) -> dict[str, Any]:
        """Further facts about where the nodes ran, for test.json and the report."""
        return {}

    def log_path(self, node: str) -> Path:
        return self.node_dir(node) / "node.log"

    def status(self, node: str) -> dict[str, Any] | None:
        """The node's `/admin/status`, or None when it does not answer."""
        try:
            resp = requests.get(f"{self.client_url(node)}/admin/status",
                                headers=self.admin_headers, timeout=ADMIN_TIMEOUT_S)
            return resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def _exited_at_start(self, node: str) -> str | None:
        """How the node's process ended, if it already has (a failed start), else None."""
        return None

    def answers(self, node: str) -> bool:
        """One readiness probe of the node (`ready_probe` says what it asks)."""
        return self.status(node) is not None

    def _wait_ready(self, node: str) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            ended = self._exited_at_start(node)
            if ended is not None:
                raise PlatformError(f"node {node} {ended} at start; its log ends:\n"
                                    f"{self._log_tail(node)}")
            if self.answers(node):
                return
            time.sleep(0.1)
        raise PlatformError(f"node {node} did not answer {self.ready_probe} within "
                            f"{self.ready_timeout_s:.0f} s; its log ends:\n{self._log_tail(node)}")

    def _log_tail(self, node: str, lines: int = 15) -> str:
        try:
            text = self.log_path(node).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def set_packet(self, node: str, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                   loss_percent: float = 0.0) -> None:
        """Delay and drop packets on the node's interface (tc netem)."""
        raise PlatformError(f"the {self.name} platform cannot shape packets (no tc netem)")

    def heal_packet(self) -> dict[str, str]:
        """End every packet fault; returns per-node errors."""
        return {}

    def heal_all(self) -> dict[str, str]:
        """Undo every fault: resume, restart, heal partitions and packets, reset clocks."""
        errors: dict[str, str] = {}
        steps = (self._resume_all, self._restart_dead, self.heal_partition, self.heal_packet,
                 self._reset)
        for step in steps:
            try:
                errors.update(step() or {})
            except Exception as e:  # keep healing the rest
                errors[step.__name__] = f"{type(e).__name__}: {e}"
        return errors

    def _reset(self) -> dict[str, str]:
        self.reset_clocks()
        return {}

    @abstractmethod
    def _resume_all(self) -> dict[str, str]:
        """Resume every paused node."""

    @abstractmethod
    def _restart_dead(self) -> dict[str, str]:
        """Restart every node that is not running."""


@dataclass
class NodeSpec:
    id: str
    host: str
    client_port: int
    peer_port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"


class SpecPlatform(Platform):
    """What every real platform shares: a fixed list of node specs, a folder per node under
    `root`, clocks offset through each node's libfaketime file, and a grudge kept in the session
    record so that a restarted node (or `harness cleanup`) finds it.

    Subclasses set `root`, `specs`, `_by_id`, `session`, `clock`, `store`, `_paused` and
    `_grudge`."""

    root: Path
    store: Store
    specs: list[NodeSpec]
    _by_id: dict[str, NodeSpec]
    session: Session
    clock: bool
    _paused: set[str]
    _grudge: dict[str, list[str]]

    def node_ids(self) -> list[str]:
        return [s.id for s in self.specs]

    def _resume_all(self) -> dict[str, str]:
        errors = {}
        for node in sorted(self._paused):
            try:
                self.resume(node)
            except PlatformError as e:  # resume the rest
                errors[node] = str(e)
        return errors

    def client_url(self, node: str) -> str:
        return self._spec(node).url

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def spec(self, node: str) -> NodeSpec:
        """The node's host and ports."""
        return self._spec(node)

    def _spec(self, node: str) -> NodeSpec:
        try:
            return self._by_id[node]
        except KeyError:
            raise PlatformError(
                f"no node {node!r}; the nodes are {', '.join(self.node_ids())}"
            ) from None

    def _faketime_file(self, node: str) -> Path:
        return self.node_dir(node) / "faketime.rc"

    def wipe(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        # the data lives under `root` on this machine (docker: the bind-mounted nodes/ folder)
        paths = {n: self.store.data_paths(self._spec(n), self.root) for n in nodes}
        if any(p is None for p in paths.values()):
            raise PlatformError(f"the {self.store.name} store does not say where its nodes keep "
                                "their data, so the wipe nemesis cannot delete it")
        return self._kill_then(nodes, lambda n: erase(paths[n] or []))

    @abstractmethod
    def _apply_grudge(self, nodes: list[str]) -> dict[str, str]:
        """Put the recorded grudge in place on these nodes; returns per-node errors."""

    @abstractmethod
    def _save_faults(self) -> None:
        """Record the active faults in the session."""

    def partition(self, grudge: Grudge) -> dict[str, str]:
        self._grudge = {node: sorted(drop) for node, drop in grudge.items() if drop}
        self._save_faults()
        return self._apply_grudge(self.node_ids())

    def set_clock_offset(self, node: str, seconds: float) -> None:
        if not self.clock:
            raise PlatformError("clock faults need the cluster started with libfaketime "
                                "(choose the clock nemesis)")
        path = self._faketime_file(self._spec(node).id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+.6f}\n")
        os.replace(tmp, path)  # libfaketime must never read a half-written file
        self.session.faults.setdefault("clock", {})[node] = seconds
        self.session.save()

    def reset_clocks(self) -> None:
        if not self.clock:
            return
        for node in self.node_ids():
            self.set_clock_offset(node, 0.0)
        self.session.faults.pop("clock", None)
        self.session.save()

    def read_clock_offsets(self) -> dict[str, float | None]:
        def one(node: str) -> float | None:
            if node in self._paused or not self.is_running(node):
                return None
            # as NTP does: the reading with the shortest round trip, whose error (at most half
            # of it) a loaded machine otherwise inflates to tenths of a second
            best: tuple[float, float] | None = None  # (round trip, offset)
            for _ in range(CLOCK_READS):
                try:
                    before = time.time()
                    resp = requests.get(f"{self.client_url(node)}/admin/clock",
                                        headers=self.admin_headers, timeout=ADMIN_TIMEOUT_S)
                    after = time.time()
                    offset = resp.json()["wall_ms"] / 1000 - (before + after) / 2
                except (requests.RequestException, ValueError, KeyError, TypeError):
                    continue
                if best is None or after - before < best[0]:
                    best = (after - before, offset)
                if best[0] < CLOCK_GOOD_RTT_S:
                    break
            return None if best is None else round(best[1], 3)

        with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
            return dict(zip(self.node_ids(), pool.map(one, self.node_ids()), strict=True))

    @abstractmethod
    def is_running(self, node: str) -> bool:
        """Whether the node's process is alive (it may still be paused)."""

    def _restart_dead(self) -> dict[str, str]:
        errors = {}
        for node in self.node_ids():
            try:
                self.restart(node)
            except PlatformError as e:
                errors[node] = str(e)
        return errors


def erase(paths: list[Path]) -> dict[str, int]:
    """Delete the files under each path (a folder stays, emptied: it may be a faultfs
    mountpoint), then fsync each folder so that a later power cut cannot bring them back; how
    many files and bytes went."""
    files = size = 0
    for path in paths:
        if not path.exists():
            continue
        victims = [path] if not path.is_dir() else sorted(path.rglob("*"), reverse=True)
        for victim in victims:  # deepest first: a folder is empty when its turn comes
            if victim.is_dir() and not victim.is_symlink():
                victim.rmdir()
                continue
            files += 1
            size += victim.lstat().st_size
            victim.unlink()
        folder = path if path.is_dir() else path.parent
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return {"files": files, "bytes": size}
