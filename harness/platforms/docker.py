"""The docker platform: each node is a container from the project's image, on a network of ours.

The harness creates a bridge network `dj-T` on a free 198.18.N.0/24 (host side .1, bridge
interface `djbr-T`) and one container `dj-T-nI` per node with a fixed address 198.18.N.(10+I),
`NET_ADMIN` (so iptables works inside it) and the run's `nodes/` folder mounted at /cluster: the
store's files (`Store.layout`), each node's data, its log (`nodes/<id>/node.log`, so the logs are
in the run directory as they are written) and its libfaketime offset file.

What runs is the store's (`harness.stores`), as on the other platforms: the container's PID 1
only holds it open (`sleep infinity`); the node is the store's `command` (its paths under
/cluster), started with `docker exec` in its folder, and the store's sidecars (Redis Sentinel)
are started the same way once every node is ready, so they share the node's network namespace
and partitions cut them off with it. The image carries every store (its label
`dynamo-harness.stores` says which).

Crash is SIGKILL of the node process alone (its sidecars and the container live on), restart
another `docker exec`; pause is `docker pause` (the cgroup freezer: the whole container, sidecars
too); partitions are iptables DROP rules in the chain DJ-PART inside the receiving container
(`docker exec`; for a frozen container, `nsenter` into its network namespace, since exec cannot
enter it); clock skew is libfaketime inside the image, preloaded into the node only.

Containers and the network carry the label `dynamo-harness.session=<session id>` and are named in
the session record before they exist, so `harness cleanup` removes exactly them (`remove_recorded`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import EndpointConfig, IPAMConfig, IPAMPool

from harness.platforms import iptables
from harness.platforms.base import WIPE_MECHANISM, NodeSpec, PlatformError, SpecPlatform
from harness.platforms.faultdisks import MECHANISM as POWER_MECHANISM
from harness.platforms.faultdisks import FaultDisks
from harness.platforms.local import (  # SIDECAR_SEP: exec key of a store's helper: "<node>/<name>"
    FAKETIME_ENV,
    SIDECAR_SEP,
)
from harness.platforms.netalloc import Subnet, claim_subnet, new_tag, release_subnet
from harness.settings import ClusterSettings
from harness.state import Session
from harness.stores import Store
from harness.stores.base import Sidecars

DEFAULT_IMAGE = "dynamo-node:latest"
IMAGE_ENV = "HARNESS_DOCKER_IMAGE"  # another image for the nodes (tests build their own tag)
LABEL = "dynamo-harness.session"
STORES_LABEL = "dynamo-harness.stores"  # the image's label: the stores it can run
EXTRA_KEY = "docker"
MOUNT = "/cluster"
CLIENT_PORT = 8000  # each container has its own address, so the ports can be the same
PEER_PORT = 9000
LIBFAKETIME_IN_IMAGE = "/usr/local/lib/libfaketime.so.1"  # the Dockerfile links it there
DOCKER_TIMEOUT_S = 60
DEVICE = "eth0"


def docker_client() -> docker.DockerClient:
    """A client for the local engine, or a PlatformError that says how to get one."""
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
        return client
    except (DockerException, requests.RequestException) as e:
        raise PlatformError(
            "the docker platform needs a Docker engine, and none answers "
            f"({type(e).__name__}: {str(e)[:200]}); start one with `scripts/start-dockerd.sh` "
            "(as root; apt-get install docker.io first) or set DOCKER_HOST"
        ) from None


def in_container(argv: list[str]) -> list[str]:
    """A store's argv as the container runs it: a program named by a host path is found on the
    image's PATH instead (this harness's Python is the image's python3)."""
    if not argv:
        return argv
    program = argv[0]
    if program == sys.executable or os.path.basename(program).startswith("python3"):
        program = "python3"
    elif os.path.isabs(program) and not program.startswith(MOUNT + "/"):
        program = os.path.basename(program)
    return [program, *argv[1:]]


def exec_script(key: str, argv: list[str], log: str) -> str:
    """The `sh -c` script that logs a start line and execs `argv` (so the exec's pid is the
    program's), its output appended to `log` in the mount."""
    quoted = shlex.quote(log)
    return (f"echo \"--- harness: starting {key} at $(date)\" >>{quoted}; "
            f"exec {shlex.join(argv)} >>{quoted} 2>&1")


def image_stores(labels: dict[str, str] | None) -> set[str]:
    """The stores an image can run, from its label (an image older than the label: dynamo)."""
    value = (labels or {}).get(STORES_LABEL)
    return set(value.split()) if value else {"dynamo"}


class DockerPlatform(SpecPlatform):
    name = "docker"
    ready_timeout_s = 30.0  # a container takes longer to start than a process
    mechanisms = {
        "partition": "iptables DROP rules (chain DJ-PART, jumped to from INPUT) inside the "
                     "receiving node's container; real packets are dropped",
        "clock": "libfaketime inside the image (LD_PRELOAD with FAKETIME_TIMESTAMP_FILE on a "
                 "mounted file)",
        "crash": "SIGKILL of the node process inside its container (the container and any "
                 "sidecars live on), docker exec to restart it",
        "pause": "docker pause / unpause (cgroup freezer)",
        "packet": "tc netem (delay, loss) on the container's eth0",
        "power": POWER_MECHANISM + "; the mount is made on the host before the container and "
                 "reaches it through the bind mount of the run's nodes/ folder",
        "wipe": WIPE_MECHANISM + " (the container's bind mount of it; the container lives on)",
    }

    def __init__(self, root: Path, cluster: ClusterSettings, session: Session,
                 clock: bool = False, image: str | None = None,
                 token: str | None = None, store: Store | None = None,
                 power: bool = False) -> None:
        from harness.stores.dynamo import DynamoStore

        image = image or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE

        self.store = store if store is not None else DynamoStore(cluster, token=token)
        self.ready_probe = self.store.ready_probe
        self.admin_headers = self.store.admin_headers()
        self.client = docker_client()
        try:
            labels = self.client.images.get(image).labels
        except ImageNotFound:
            raise PlatformError(f"the Docker image {image} does not exist; build it with "
                                "`harness image build` (see docs/platforms.md)") from None
        if self.store.name not in image_stores(labels):
            raise PlatformError(
                f"the Docker image {image} cannot run the {self.store.name} store (it carries "
                f"{', '.join(sorted(image_stores(labels)))}); rebuild it with "
                "`harness image build` (see docs/platforms.md)")
        self.root = root.resolve()
        self.cluster = cluster
        self.session = session
        self.clock = clock
        self.image = image
        self.token = str(getattr(self.store, "token", token or secrets.token_hex(16)))
        ids = [f"n{i + 1}" for i in range(cluster.nodes)]
        record = session.extra.get(EXTRA_KEY)
        if record is None:
            tag = new_tag()
            record = {"tag": tag, "subnet": claim_subnet(session.id).n, "network": f"dj-{tag}",
                      "bridge": f"djbr-{tag}",
                      "containers": {node: f"dj-{tag}-{node}" for node in ids}}
        record.setdefault("execs", {})
        self.record = record
        self._saving = threading.Lock()  # nodes start in parallel; the session file is one
        self.subnet = Subnet(int(record["subnet"]))
        self.specs = [NodeSpec(node, self.subnet.node_address(i), CLIENT_PORT, PEER_PORT)
                      for i, node in enumerate(ids)]
        self._by_id = {s.id: s for s in self.specs}
        self._paused: set[str] = set(session.faults.get("paused", []))
        self._grudge: dict[str, list[str]] = dict(session.faults.get("partition", {}))
        self._packet: dict[str, dict[str, float]] = dict(session.faults.get("packet", {}))
        session.extra.update({"platform": self.name, "root": str(self.root), EXTRA_KEY: record})
        session.save()
        self._write_files()
        # the power nemesis: faultfs over each node's data directory, mounted on the host
        self.disks = FaultDisks(session, self.root, ids) if power else None

    def _write_files(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for s in self.specs:
            self.node_dir(s.id).mkdir(parents=True, exist_ok=True)
            if self.clock and not self._faketime_file(s.id).exists():
                self._faketime_file(s.id).write_text("+0\n")
        self.store.layout(self.root, self.specs)

    # -- queries ------------------------------------------------------------------------------

    def container_name(self, node: str) -> str:
        return self.record["containers"][self._spec(node).id]

    def pids(self) -> dict[str, int]:
        """Host pids of the running node processes (not the containers' PID 1)."""
        out = {}
        for node in self.node_ids():
            state = self._exec_state(node)
            if state and state.get("Running") and state.get("Pid"):
                out[node] = int(state["Pid"])
        return out

    def is_running(self, node: str) -> bool:
        state = self._exec_state(self._spec(node).id)
        return bool(state and state.get("Running"))

    def answers(self, node: str) -> bool:
        return self.store.is_ready(self._spec(node))

    def _exec_state(self, key: str) -> dict[str, Any] | None:
        """The engine's view of the exec that runs `key` (Running, Pid, ExitCode), or None."""
        exec_id = self.record["execs"].get(key)
        if exec_id is None:
            return None
        try:
            return self.client.api.exec_inspect(exec_id)
        except (NotFound, APIError, requests.RequestException):
            return None

    def _container(self, node: str) -> Any:
        try:
            return self.client.containers.get(self.container_name(node))
        except NotFound:
            return None

    def _state(self, node: str) -> dict[str, Any] | None:
        container = self._container(node)
        return container.attrs.get("State") if container is not None else None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.disks is not None:  # before the containers: their bind mount takes it along
            self.disks.mount_all()
        self._ensure_network()
        with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
            list(pool.map(self._start_container, self.node_ids()))
            list(pool.map(self._start_node, self.node_ids()))
            list(pool.map(self._wait_ready, self.node_ids()))
        self._start_sidecars()
        self._apply_grudge(self.node_ids())

    def stop(self) -> None:
        remove_recorded(self.record, self.session.id, self.client)
        if self.disks is not None:  # after the containers: nothing writes to them now
            unmounted = self.disks.unmount_all()
            if unmounted:
                raise PlatformError(f"unmounting faultfs failed: {unmounted}")
        self._paused.clear()
        self._grudge.clear()
        self._packet.clear()
        self.session.faults.clear()
        self.session.extra.pop(EXTRA_KEY, None)
        self.session.save()

    def _ensure_network(self) -> None:
        name = self.record["network"]
        with contextlib.suppress(NotFound):
            self.client.networks.get(name)
            return
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=self.subnet.cidr,
                                                 gateway=self.subnet.gateway)])
        try:
            self.client.networks.create(
                name, driver="bridge", ipam=ipam, labels={LABEL: self.session.id},
                options={"com.docker.network.bridge.name": self.record["bridge"]})
        except APIError as e:
            raise PlatformError(f"creating the Docker network {name} on {self.subnet.cidr} "
                                f"failed: {e.explanation or e}") from None

    def _start_container(self, node: str) -> None:
        container = self._container(node)
        if container is None:
            container = self._create_container(node)
        if not container.attrs["State"].get("Running"):
            try:
                container.start()
            except APIError as e:
                raise PlatformError(f"starting the container of {node} failed: "
                                    f"{e.explanation or e}") from None

    def _create_container(self, node: str) -> Any:
        spec = self._spec(node)
        network = self.record["network"]
        try:
            return self.client.containers.create(
                self.image, name=self.container_name(node), hostname=node,
                # PID 1 only keeps the container up; the node and its sidecars are exec'd
                entrypoint=["sleep", "infinity"], command=[],
                environment={"PYTHONUNBUFFERED": "1"},
                cap_add=["NET_ADMIN"], labels={LABEL: self.session.id, "dynamo-harness.node": node},
                volumes={str(self.root): {"bind": MOUNT, "mode": "rw"}},
                network=network,
                networking_config={network: EndpointConfig(self.client.api.api_version,
                                                           ipv4_address=spec.host)},
            )
        except APIError as e:
            raise PlatformError(f"creating the container of {node} failed: "
                                f"{e.explanation or e}") from None

    def _start_node(self, node: str) -> None:
        if self.is_running(node):
            return
        env = {}
        if self.clock:
            env = {"LD_PRELOAD": LIBFAKETIME_IN_IMAGE,
                   "FAKETIME_TIMESTAMP_FILE": f"{MOUNT}/{node}/faketime.rc",
                   **FAKETIME_ENV}
        argv = in_container(self.store.command(self._spec(node), Path(MOUNT)))
        self._exec(node, node, argv, f"{MOUNT}/{node}/node.log", env)

    def _start_sidecars(self) -> None:
        """The store's helpers beside each node, in its container (its network namespace)."""
        if not isinstance(self.store, Sidecars):
            return
        for spec in self.specs:
            for name, argv in self.store.sidecars(spec, Path(MOUNT)).items():
                key = f"{spec.id}{SIDECAR_SEP}{name}"
                state = self._exec_state(key)
                if state is None or not state.get("Running"):
                    self._exec(spec.id, key, in_container(argv),
                               f"{MOUNT}/{spec.id}/{name}.log", {})

    def _exec(self, node: str, key: str, argv: list[str], log: str,
              env: dict[str, str]) -> None:
        """Start `argv` in the node's container, in its folder, detached; the exec is recorded
        under `key` (the container's removal ends it, so cleanup needs nothing more)."""
        container = self._container(node)
        if container is None:
            raise PlatformError(f"the container of {node} does not exist")
        try:
            exec_id = self.client.api.exec_create(
                container.id, ["sh", "-c", exec_script(key, argv, log)], environment=env,
                workdir=f"{MOUNT}/{node}")["Id"]
            with self._saving:
                self.record["execs"][key] = exec_id
                self.session.save()
            self.client.api.exec_start(exec_id, detach=True)
        except APIError as e:
            raise PlatformError(f"starting {key} in its container failed: "
                                f"{e.explanation or e}") from None

    def _exited_at_start(self, node: str) -> str | None:
        container = self._state(node)
        if container is not None and container.get("Status") == "exited":
            return f"had its container exit with code {container.get('ExitCode')}"
        state = self._exec_state(node)
        if state is not None and not state.get("Running") and state.get("ExitCode") is not None:
            return f"exited with code {state.get('ExitCode')}"
        return None

    # -- crash, pause -------------------------------------------------------------------------

    def kill(self, node: str) -> None:
        node = self._spec(node).id
        state = self._exec_state(node)
        if not state or not state.get("Running") or not state.get("Pid"):
            return
        container = self._container(node)
        try:
            _kill_9(int(state["Pid"]), container)
            if node in self._paused and container is not None:
                with contextlib.suppress(APIError):  # a frozen task takes SIGKILL when thawed
                    container.unpause()
        except (APIError, requests.RequestException) as e:
            raise PlatformError(f"killing {node} failed: {e}") from None
        deadline = time.monotonic() + DOCKER_TIMEOUT_S
        while self.is_running(node):
            if time.monotonic() > deadline:
                raise PlatformError(f"{node} was sent SIGKILL and is still running")
            time.sleep(0.05)
        self._paused.discard(node)
        self._save_faults()

    def restart(self, node: str) -> None:
        if self.is_running(node):
            return
        self._start_container(node)
        self._start_node(self._spec(node).id)
        self._wait_ready(node)
        # the container and its network namespace lived on, but put the faults back anyway
        # (a container the engine restarted has a fresh namespace)
        errors = self._apply_grudge([node]) | self._apply_packet([node])
        if errors:
            raise PlatformError(f"restoring faults on {node}: {errors}")

    def pause(self, node: str) -> None:
        container = self._container(node)
        if container is None or not container.attrs["State"].get("Running"):
            raise PlatformError(f"cannot pause {node}: it is not running")
        if not container.attrs["State"].get("Paused"):
            container.pause()
        self._paused.add(node)
        self._save_faults()

    def resume(self, node: str) -> None:
        container = self._container(node)
        if container is not None and container.attrs["State"].get("Paused"):
            try:
                container.unpause()
            except APIError as e:
                raise PlatformError(f"cannot resume {node}: {e}") from e
        self._paused.discard(node)
        self._save_faults()

    # -- running a script inside a container --------------------------------------------------

    def exec_script(self, node: str, script: str) -> str | None:
        """`sh -c script` inside the node's container; an error message, or None.

        `docker exec` cannot enter a frozen container, so for a paused one the script runs in
        its network namespace through nsenter (with the host's iptables and tc).
        """
        container = self._container(node)
        if container is None or not container.attrs["State"].get("Running"):
            return "not running"
        if container.attrs["State"].get("Paused"):
            if shutil.which("nsenter") is None:
                return "paused, and nsenter (util-linux) is not installed to reach it"
            pid = str(container.attrs["State"]["Pid"])
            try:
                proc = subprocess.run(["nsenter", "-t", pid, "-n", "sh", "-c", script],
                                      capture_output=True, text=True, timeout=15)
            except subprocess.TimeoutExpired:
                return "timed out"
            out, code = proc.stderr or proc.stdout, proc.returncode
        else:
            try:
                code, raw = container.exec_run(["sh", "-c", script])
            except APIError as e:
                return f"docker exec: {e.explanation or e}"
            out = raw.decode(errors="replace") if raw else ""
        return None if code == 0 else f"exit {code}: {out.strip()[:300]}"

    # -- partitions ---------------------------------------------------------------------------

    def heal_partition(self) -> dict[str, str]:
        self._grudge = {}
        self._save_faults()
        return self._apply_grudge(self.node_ids())

    def _apply_grudge(self, nodes: list[str]) -> dict[str, str]:
        """Each running container's drop list as iptables rules (a node process that is down
        keeps its container, whose rules go on cutting its sidecars off)."""
        targets = [n for n in nodes if (self._state(n) or {}).get("Running")]

        def one(node: str) -> str | None:
            sources = [self._spec(peer).host for peer in self._grudge.get(node, [])]
            return self.exec_script(node, iptables.partition_script(sources))

        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            results = list(pool.map(one, targets))
        return {node: err for node, err in zip(targets, results, strict=True) if err}

    def partition_rules(self, node: str) -> list[str]:
        """The harness's iptables rules now inside the node's container."""
        container = self._container(node)
        if container is None:
            return []
        _, raw = container.exec_run(["sh", "-c", iptables.list_script()])
        return [line for line in (raw or b"").decode().splitlines() if line.strip()]

    # -- packet faults ------------------------------------------------------------------------

    def set_packet(self, node: str, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                   loss_percent: float = 0.0) -> None:
        self._packet[self._spec(node).id] = {"delay_ms": delay_ms, "jitter_ms": jitter_ms,
                                             "loss_percent": loss_percent}
        self._save_faults()
        err = self._apply_packet([node]).get(node)
        if err:
            raise PlatformError(f"tc netem on {node}: {err}")

    def heal_packet(self) -> dict[str, str]:
        had = list(self._packet)
        self._packet = {}
        self._save_faults()
        targets = [n for n in had if (self._state(n) or {}).get("Running")]
        errors = {}
        for node in targets:
            err = self.exec_script(node, iptables.netem_heal_script(DEVICE))
            if err:
                errors[node] = err
        return errors

    def _apply_packet(self, nodes: list[str]) -> dict[str, str]:
        errors = {}
        for node in nodes:
            setting = self._packet.get(node)
            if setting is None:
                continue
            err = self.exec_script(node, iptables.netem_script(DEVICE, **setting))
            if err:
                if "qdisc kind is unknown" in err:
                    err = "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); " + err
                errors[node] = err
        return errors

    # -- bookkeeping --------------------------------------------------------------------------

    def _save_faults(self) -> None:
        self.session.faults["paused"] = sorted(self._paused)
        self.session.faults["partition"] = self._grudge
        self.session.faults["packet"] = self._packet
        self.session.save()


def _kill_9(host_pid: int, container: Any) -> None:
    """SIGKILL one process of a container by its host pid; without the right to signal it from
    the host (a user in the docker group), from inside the container by its pid there."""
    try:
        os.kill(host_pid, signal.SIGKILL)
        return
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    inner = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                inner = line.split()[-1]
    if inner is None or container is None:
        raise PlatformError(f"cannot signal pid {host_pid}: not allowed, and its pid inside "
                            "the container is unknown")
    if container.attrs["State"].get("Paused"):
        container.unpause()
    code, out = container.exec_run(["kill", "-9", inner])
    if code != 0:
        raise PlatformError(f"kill -9 {inner} in the container: {(out or b'').decode()[:200]}")


def remove_recorded(record: dict[str, Any], owner: str,
                    client: docker.DockerClient | None = None) -> list[str]:
    """Remove the containers and network a docker session record names; safe to repeat."""
    done: list[str] = []
    client = client or docker_client()
    names = set(record.get("containers", {}).values())
    # by name (recorded before creation) and by label (in case a name was reused oddly)
    found = {c.name: c for c in client.containers.list(all=True,
                                                      filters={"label": f"{LABEL}={owner}"})}
    for name in names - set(found):
        with contextlib.suppress(NotFound):
            found[name] = client.containers.get(name)
    for name, container in sorted(found.items()):
        if container.labels.get(LABEL) != owner:
            continue  # same name, not ours: never touch it
        with contextlib.suppress(NotFound):
            container.remove(force=True)
            done.append(f"container {name}")
    network = record.get("network")
    if network:
        with contextlib.suppress(NotFound):
            net = client.networks.get(network)
            if net.attrs.get("Labels", {}).get(LABEL) == owner:
                net.remove()
                done.append(f"network {network}")
    if "subnet" in record:
        release_subnet(int(record["subnet"]), owner)
    return done
