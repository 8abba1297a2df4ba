"""The local platform: node processes on loopback addresses 127.R.S.2, 127.R.S.3, ...

Each run draws its own block 127.R.S.0/24 (R in 1..254) at random, so runs on one machine at the
same time do not share addresses: a crashed node's port stays free for its restart, even while
another run is binding ports (one block in 65,024; `free_ports` still asks the OS per address).

What runs is the store's (`harness.stores`): its files, its command, its readiness probe.
Partitions of a store that can drop its peers itself (the reference node) are simulated inside
its transport; for any other store they are real iptables rules between the members' loopback
addresses (root only; `harness.platforms.iptables`). Clock skew comes from libfaketime, crashes
are SIGKILL and pauses SIGSTOP/SIGCONT. Every node's files and log live under `<root>/` (a run
directory's `nodes/`). Every process started, and every chain made, is recorded in a
state-directory session before anything else happens to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import psutil

from harness.platforms import iptables
from harness.platforms.base import (
    WIPE_MECHANISM,
    NodeSpec,
    PlatformError,
    SpecPlatform,
)
from harness.platforms.faultdisks import MECHANISM as POWER_MECHANISM
from harness.platforms.faultdisks import FaultDisks
from harness.settings import ClusterSettings
from harness.state import Session, kill_recorded, matching_process, process_identity
from harness.stores import SelfPartitioning, Store, make_store
from harness.stores.base import Sidecars
from harness.stores.dynamo import DynamoStore

SIDECAR_SEP = "/"  # session.nodes key of a store's helper process: "<node>/<name>"
LOOPBACK_KEY = "loopback"  # session.extra: the run's iptables chains and members' group ids
GID_BASE = 1_500_000_000  # far above any group a system allocates
LOOPBACK_MECHANISM = (
    "iptables DROP rules between the members' loopback addresses: each member runs under its "
    "own group id, its connections leave from its own address (SNAT, chain DJS-<tag>), and what "
    "its group sends to a member cut off from it is dropped (chain DJL-<tag> from OUTPUT); real "
    "packets are dropped")

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
# Offsets re-read on every time call, so bumps and strobes take effect at once; the monotonic
# clock left alone, as an NTP step leaves it: a faked one jumps back with every bump undone and
# stalls the node's timers (asyncio's, threads' waits) for that long. Python's time.sleep fails
# with EINVAL under it, and neither the node nor aiohttp calls it.
FAKETIME_ENV = {"FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
LIBFAKETIME_CANDIDATES = (
    LIBFAKETIME,
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
    Path("/usr/local/lib/faketime/libfaketime.so.1"),
)


def find_libfaketime() -> Path:
    """The libfaketime library, or a PlatformError that says how to install it."""
    override = os.environ.get("HARNESS_LIBFAKETIME")
    for candidate in ([Path(override)] if override else []) + list(LIBFAKETIME_CANDIDATES):
        if candidate.is_file():
            return candidate
    raise PlatformError(
        "the clock nemesis needs libfaketime, which was not found at "
        f"{LIBFAKETIME}; install it with `apt-get install faketime` "
        "(or set HARNESS_LIBFAKETIME to the library's path)"
    )


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports the OS says are free on `host` now (others run clusters here
    concurrently). The sockets stay bound until all are chosen: asked one at a time, the OS
    may hand the same port out twice (seen once in ~300 runs: "address ... is used twice")."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(count)]
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]


class LocalPlatform(SpecPlatform):
    name = "local"
    mechanisms = {
        "partition": "simulated in the node transport (PUT /admin/faults/partition drops "
                     "internode frames; no real network fault)",
        "clock": "libfaketime (LD_PRELOAD with FAKETIME_TIMESTAMP_FILE; wall and monotonic "
                 "clocks move together)",
        "crash": "SIGKILL of the node process, restarted by the harness",
        "pause": "SIGSTOP / SIGCONT of the node process",
        "power": POWER_MECHANISM,
        "wipe": WIPE_MECHANISM,
    }

    def __init__(self, root: Path, cluster: ClusterSettings, session: Session,
                 clock: bool = False, specs: list[NodeSpec] | None = None,
                 token: str | None = None, store: Store | None = None,
                 power: bool = False) -> None:
        self.root = root.resolve()
        self.cluster = cluster
        self.session = session
        self.clock = clock
        self.libfaketime = find_libfaketime() if clock else None
        self.store = store if store is not None else DynamoStore(cluster, token=token)
        self.token = str(getattr(self.store, "token", token or secrets.token_hex(16)))
        self.ready_probe = self.store.ready_probe
        self.admin_headers = self.store.admin_headers()
        if not isinstance(self.store, SelfPartitioning):
            self.mechanisms = {**self.mechanisms, "partition": LOOPBACK_MECHANISM}
        self.specs = specs or self._allocate(cluster.nodes)
        self._by_id = {s.id: s for s in self.specs}
        self._popen: dict[str, subprocess.Popen] = {}
        self._paused: set[str] = set(session.faults.get("paused", []))
        self._grudge: dict[str, list[str]] = dict(session.faults.get("partition", {}))
        self.root.mkdir(parents=True, exist_ok=True)
        # the power nemesis: each node's data directory is a faultfs mount
        self.disks = FaultDisks(session, self.root, self.node_ids()) if power else None
        session.extra.update({"platform": self.name, "root": str(self.root)})
        session.save()
        if specs is None:
            self._write_files()

    # -- construction -------------------------------------------------------------------------

    @staticmethod
    def _allocate(count: int) -> list[NodeSpec]:
        block = f"127.{1 + secrets.randbelow(254)}.{secrets.randbelow(256)}"
        specs = []
        for i in range(count):
            host = f"{block}.{2 + i}"
            specs.append(NodeSpec(f"n{i + 1}", host, *free_ports(host, 2)))
        return specs

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.toml"

    def _write_files(self) -> None:
        for s in self.specs:
            self.node_dir(s.id).mkdir(parents=True, exist_ok=True)
            if self.clock:
                self._faketime_file(s.id).write_text("+0\n")
        self.store.layout(self.root, self.specs)
        meta = {"cluster": asdict(self.cluster), "clock": self.clock, "token": self.token,
                "store": self.store.name, "store_options": sorted(self.store.option_names),
                "nodes": [asdict(s) for s in self.specs]}
        (self.root / "platform.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def attach(cls, root: Path, session: Session) -> LocalPlatform:
        """A platform for a cluster started earlier (by `harness cluster up`)."""
        meta = json.loads((root / "platform.json").read_text(encoding="utf-8"))
        cluster = ClusterSettings(**meta["cluster"])
        name = meta.get("store", "dynamo")
        store = (DynamoStore(cluster, token=meta["token"]) if name == "dynamo"
                 else make_store(name, cluster, meta.get("store_options", [])))
        return cls(root, cluster, session, clock=meta["clock"],
                   specs=[NodeSpec(**n) for n in meta["nodes"]], token=meta["token"],
                   store=store)

    # -- queries ------------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        out = {}
        for node in self.node_ids():
            proc = self._proc(node)
            if proc is not None:
                out[node] = proc.pid
        return out

    def is_running(self, node: str) -> bool:
        return self._proc(node) is not None

    def is_paused(self, node: str) -> bool:
        return node in self._paused

    def _proc(self, node: str) -> psutil.Process | None:
        return matching_process(self.session.nodes.get(node))

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.disks is not None:
            self.disks.mount_all()
        self._loopback_setup()
        for node in self.node_ids():
            if not self.is_running(node):
                self._launch(node)
        with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
            list(pool.map(self._wait_ready, self.node_ids()))
        self._start_sidecars()
        self._apply_grudge(self.node_ids())

    def stop(self) -> None:
        unmounted: dict[str, str] = {}
        try:
            for key in [k for k in self.session.nodes if SIDECAR_SEP in k]:
                self._terminate(key)
            for node in self.node_ids():
                self._terminate(node)
        finally:
            try:
                self._loopback_teardown()
            finally:
                if self.disks is not None:  # after the nodes: nothing writes to them now
                    unmounted = self.disks.unmount_all()
        self._paused.clear()
        self._grudge.clear()
        self._save_faults()
        if unmounted:
            raise PlatformError(f"unmounting faultfs failed: {unmounted}")

    def kill(self, node: str) -> None:
        proc = self._proc(node)
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            self._reap(node, proc)
        self._paused.discard(node)
        self._save_faults()

    def restart(self, node: str) -> None:
        if self.is_running(node):
            return
        self._launch(node)
        self._wait_ready(node)
        self._apply_grudge([node])  # a new process starts with no faults

    def stop_node(self, node: str) -> None:
        self._spec(node)
        self.kill(node)

    def _node_env(self, node: str) -> dict[str, str]:
        """The node process's environment: libfaketime preloaded when clocks are a fault."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.clock:
            assert self.libfaketime is not None
            if not self._faketime_file(node).exists():
                self._faketime_file(node).write_text("+0\n")
            env.update({
                "LD_PRELOAD": ":".join(filter(None, [str(self.libfaketime),
                                                     env.get("LD_PRELOAD")])),
                "FAKETIME_TIMESTAMP_FILE": str(self._faketime_file(node)),
                **FAKETIME_ENV,
            })
        return env

    def _node_cmd(self, node: str) -> list[str]:
        return self.store.command(self._spec(node), self.root)

    def answers(self, node: str) -> bool:
        return self.store.is_ready(self._spec(node))

    def _launch(self, node: str) -> None:
        spec = self._spec(node)
        directory = self.node_dir(node)
        directory.mkdir(parents=True, exist_ok=True)
        env = self._node_env(node)
        cmd = self._node_cmd(node)
        with self.log_path(node).open("ab") as log:
            log.write(f"--- harness: starting {spec.id} at {time.ctime()}\n".encode())
            log.flush()
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=directory, env=env,
                                     start_new_session=True,  # Ctrl-C reaches the harness only
                                     **self._group_kwargs(node))
        self._popen[node] = popen
        try:
            self.session.nodes[node] = process_identity(popen.pid)
        except psutil.NoSuchProcess:
            self.session.nodes[node] = {"pid": popen.pid, "create_time": 0, "cmdline": cmd}
        self.session.save()

    def _start_sidecars(self) -> None:
        """The store's helpers beside each node, in its group (partitions reach them too)."""
        if not isinstance(self.store, Sidecars):
            return
        for spec in self.specs:
            for name, cmd in self.store.sidecars(spec, self.root).items():
                key = f"{spec.id}{SIDECAR_SEP}{name}"
                if matching_process(self.session.nodes.get(key)) is not None:
                    continue
                with (self.node_dir(spec.id) / f"{name}.log").open("ab") as log:
                    popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.node_dir(spec.id),
                                             start_new_session=True,
                                             **self._group_kwargs(spec.id))
                self._popen[key] = popen
                try:
                    self.session.nodes[key] = process_identity(popen.pid)
                except psutil.NoSuchProcess:
                    self.session.nodes[key] = {"pid": popen.pid, "create_time": 0,
                                               "cmdline": cmd}
                self.session.save()

    def _exited_at_start(self, node: str) -> str | None:
        popen = self._popen.get(node)
        if popen is not None and popen.poll() is not None:
            return f"exited with code {popen.returncode}"
        return None

    def _terminate(self, node: str) -> None:
        ident = self.session.nodes.get(node)
        if ident is not None:
            kill_recorded(ident)
        popen = self._popen.pop(node, None)
        if popen is not None:
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        self.session.nodes.pop(node, None)
        self.session.save()

    def _reap(self, node: str, proc: psutil.Process) -> None:
        popen = self._popen.pop(node, None)
        if popen is not None:
            popen.wait(timeout=5)
        else:
            with contextlib.suppress(psutil.TimeoutExpired, psutil.NoSuchProcess):
                proc.wait(timeout=5)

    # -- pause --------------------------------------------------------------------------------

    def pause(self, node: str) -> None:
        proc = self._proc(node)
        if proc is None:
            raise PlatformError(f"cannot pause {node}: it is not running")
        proc.send_signal(signal.SIGSTOP)
        self._paused.add(node)
        self._save_faults()

    def resume(self, node: str) -> None:
        proc = self._proc(node)
        if proc is not None:
            proc.send_signal(signal.SIGCONT)
        self._paused.discard(node)
        self._save_faults()
        if proc is not None:
            self._apply_grudge([node])  # a change made while it slept did not reach it

    # -- partitions ---------------------------------------------------------------------------

    def heal_partition(self) -> dict[str, str]:
        self._grudge = {}
        self._save_faults()
        return self._apply_grudge(self.node_ids())

    def _apply_grudge(self, nodes: list[str]) -> dict[str, str]:
        if not isinstance(self.store, SelfPartitioning):
            return self._loopback_apply()
        store = self.store
        # tell each live, unpaused node its drop list; paused ones are told on resume
        targets = [n for n in nodes if n not in self._paused and self.is_running(n)]

        def one(node: str) -> str | None:
            return store.drop_from(self._spec(node),
                                   [self._spec(p) for p in self._grudge.get(node, [])])

        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            results = pool.map(one, targets)
            return {node: err for node, err in zip(targets, results, strict=True) if err}

    # -- partitions of other stores: iptables between loopback addresses ----------------------

    @property
    def _loopback(self) -> dict | None:
        return self.session.extra.get(LOOPBACK_KEY)

    def _uses_loopback_filter(self) -> bool:
        return not isinstance(self.store, SelfPartitioning) and os.geteuid() == 0

    def _group_kwargs(self, node: str) -> dict:
        """Run a member under its own group id, so its connections get its own source."""
        record = self._loopback
        if record is None:
            return {}
        return {"group": int(record["gids"][node]), "extra_groups": []}

    def _loopback_setup(self) -> None:
        if not self._uses_loopback_filter() or self._loopback is not None:
            return
        tag = secrets.token_hex(4)
        base = GID_BASE + secrets.randbelow(1 << 20) * 256
        record = {"tag": tag, "gids": {s.id: base + i for i, s in enumerate(self.specs)}}
        self.session.extra[LOOPBACK_KEY] = record  # recorded before it is made
        self.session.save()
        sources = {record["gids"][s.id]: s.host for s in self.specs}
        err = _sh(iptables.loopback_setup_script(tag, sources))
        if err:
            self._loopback_teardown()
            raise PlatformError(f"setting up iptables for partitions failed: {err}")

    def _loopback_apply(self) -> dict[str, str]:
        record = self._loopback
        if record is None:
            if self._grudge:
                return {"partition": "this store cannot partition itself and iptables is not "
                                     "set up here (the local platform needs root for it)"}
            return {}
        # `node` drops what `peer` sends it: what the peer's group sends to node's address
        drops = [(int(record["gids"][peer]), self._spec(node).host)
                 for node, peers in self._grudge.items() for peer in peers]
        err = _sh(iptables.loopback_partition_script(record["tag"], drops))
        return {"iptables": err} if err else {}

    def _loopback_teardown(self) -> None:
        record = self._loopback
        if record is None:
            return
        err = remove_loopback(record)
        if err:
            raise PlatformError(f"removing the iptables chains failed: {err}")
        self.session.extra.pop(LOOPBACK_KEY, None)
        self.session.save()

    def partition_rules(self) -> list[str]:
        """The run's own iptables rules now in place (for tests and reports)."""
        record = self._loopback
        if record is None:
            return []
        proc = subprocess.run(["sh", "-c", iptables.loopback_list_script(record["tag"])],
                              capture_output=True, text=True, timeout=15)
        return [line for line in proc.stdout.splitlines() if line.strip()]

    # -- bookkeeping --------------------------------------------------------------------------

    def _save_faults(self) -> None:
        self.session.faults["paused"] = sorted(self._paused)
        self.session.faults["partition"] = self._grudge
        self.session.save()


def _sh(script: str, timeout: float = 15.0) -> str | None:
    """Run a shell script; an error message, or None."""
    try:
        proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:300]}"
    return None


def remove_loopback(record: dict) -> str | None:
    """Remove the chains a session's loopback record names (`harness cleanup` too)."""
    return _sh(iptables.loopback_teardown_script(str(record["tag"])))
