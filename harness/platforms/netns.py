"""The netns platform: each node is a process in its own network namespace, on a bridge.

Layout for a cluster tagged T on 198.18.N.0/24: a bridge `djbr-T` with 198.18.N.1 on the host
side, and per node a namespace `dj-T-nI` whose `eth0` (one end of a veth pair; the host end
`djvT-I` is enslaved to the bridge) has 198.18.N.(10+I). No namespace has a default route: the
only network a node sees is its peers and the host, which reaches the nodes through the bridge.

Partitions are iptables DROP rules inside the receiving node's namespace (harness.platforms.
iptables); packet faults are tc netem on its eth0; clock skew, crashes and pauses are as on the
local platform (libfaketime, SIGKILL, SIGSTOP), whose process handling this class reuses.

Everything made is written to the session record before it is made, so `harness cleanup` after a
`kill -9` of the harness removes exactly that (`remove_recorded`), and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from harness.platforms import iptables
from harness.platforms.base import WIPE_MECHANISM, PlatformError
from harness.platforms.faultdisks import MECHANISM as POWER_MECHANISM
from harness.platforms.local import SIDECAR_SEP, LocalPlatform, NodeSpec
from harness.platforms.netalloc import Subnet, claim_subnet, new_tag, release_subnet
from harness.settings import ClusterSettings
from harness.state import Session, matching_process, process_identity
from harness.stores import Store
from harness.stores.base import Sidecars

CLIENT_PORT = 8000  # every node has its own namespace, hence its own port space
PEER_PORT = 9000
CMD_TIMEOUT_S = 15.0
EXTRA_KEY = "netns"
DEVICE = "eth0"


def require_netns_tools() -> None:
    """A PlatformError that says what is missing: root, iproute2, iptables."""
    missing = [tool for tool in ("ip", "iptables", "tc") if shutil.which(tool) is None]
    problems = []
    if os.geteuid() != 0:
        problems.append("it must run as root (network namespaces and iptables need it)")
    if missing:
        problems.append(f"{', '.join(missing)} not found (apt-get install iproute2 iptables)")
    if problems:
        raise PlatformError("the netns platform cannot run here: " + "; ".join(problems))


def _run(argv: list[str], stdin: str | None = None,
         timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:.0f} s")


def _must(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise PlatformError(f"{what} failed (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[:500]}")


def forward_rule(bridge: str) -> list[str]:
    """The host FORWARD rule that lets nodes on our bridge talk to each other.

    When br_netfilter is loaded, bridged frames pass the host's FORWARD chain, whose policy a
    Docker engine sets to DROP; this one rule, ours alone, lets our bridge's traffic through.
    """
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT",
            "-m", "comment", "--comment", f"dynamo-harness {bridge}"]


class NetnsNetwork:
    """The bridge, namespaces and veth pairs of one cluster, recorded in the session."""

    def __init__(self, session: Session, node_ids: list[str]) -> None:
        self.session = session
        record = session.extra.get(EXTRA_KEY)
        if record is None:
            tag = new_tag()
            subnet = claim_subnet(session.id)
            record = {
                "tag": tag, "subnet": subnet.n, "bridge": f"djbr-{tag}",
                "namespaces": {node: f"dj-{tag}-{node}" for node in node_ids},
                "veths": {node: f"djv{tag}-{i + 1}" for i, node in enumerate(node_ids)},
                "forward_rule": forward_rule(f"djbr-{tag}"), "created": False,
            }
            session.extra[EXTRA_KEY] = record
            session.save()
        self.record = record
        self.subnet = Subnet(int(record["subnet"]))
        self.node_ids = node_ids

    def namespace(self, node: str) -> str:
        return self.record["namespaces"][node]

    def address(self, node: str) -> str:
        return self.subnet.node_address(self.node_ids.index(node))

    def create(self) -> None:
        """Make the bridge, the FORWARD rule and every namespace (idempotent per piece)."""
        if self.record.get("created"):
            return
        self.record["created"] = True  # from now on cleanup has something to remove
        self.session.save()
        bridge = self.record["bridge"]
        lines = [f"link add {bridge} type bridge",
                 f"addr add {self.subnet.gateway}/24 dev {bridge}",
                 f"link set {bridge} up"]
        for node in self.node_ids:
            ns, veth = self.namespace(node), self.record["veths"][node]
            lines += [f"netns add {ns}",
                      # the namespace end is made inside it, already named eth0
                      f"link add {veth} type veth peer name {DEVICE} netns {ns}",
                      f"link set {veth} master {bridge} up"]
        _must(_run(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n"),
              "creating the bridge and namespaces")
        for node in self.node_ids:
            inside = [f"addr add {self.address(node)}/24 dev {DEVICE}",
                      f"link set {DEVICE} up", "link set lo up"]
            _must(_run(["ip", "-n", self.namespace(node), "-batch", "-"],
                       stdin="\n".join(inside) + "\n"),
                  f"configuring {DEVICE} in {self.namespace(node)}")
        _must(_run(["iptables", "-w", "5", "-I", *self.record["forward_rule"]]),
              "adding the FORWARD rule for the bridge")

    def exec_script(self, node: str, script: str) -> str | None:
        """Run `sh -c script` inside the node's namespace; an error message, or None."""
        proc = _run(["ip", "netns", "exec", self.namespace(node), "sh", "-c", script])
        if proc.returncode != 0:
            return f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:300]}"
        return None

    def destroy(self) -> list[str]:
        lines = remove_recorded(self.record, self.session.id)
        self.record["created"] = False
        self.session.extra.pop(EXTRA_KEY, None)
        self.session.save()
        return lines


def remove_recorded(record: dict[str, Any], owner: str) -> list[str]:
    """Remove what a netns session record names; safe to repeat. Returns what was removed."""
    done = []
    for ns in record.get("namespaces", {}).values():
        # a node still alive in the namespace would keep it (and its veth) in existence
        for pid in _namespace_pids(ns):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=5)
                done.append(f"killed pid {pid} in {ns}")
        if _run(["ip", "netns", "del", ns]).returncode == 0:
            done.append(f"namespace {ns}")
    for veth in record.get("veths", {}).values():
        # normally gone with its namespace's end; a half-made pair may remain
        if _run(["ip", "link", "del", veth]).returncode == 0:
            done.append(f"veth {veth}")
    rule = record.get("forward_rule")
    if rule:
        while _run(["iptables", "-w", "5", "-D", *rule]).returncode == 0:
            done.append(f"FORWARD rule for {rule[2]}")
    bridge = record.get("bridge")
    if bridge and _run(["ip", "link", "del", bridge]).returncode == 0:
        done.append(f"bridge {bridge}")
    if "subnet" in record:
        release_subnet(int(record["subnet"]), owner)
    return done


def _namespace_pids(ns: str) -> list[int]:
    proc = _run(["ip", "netns", "pids", ns])
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


class NetnsPlatform(LocalPlatform):
    name = "netns"
    mechanisms = {
        "partition": "iptables DROP rules (chain DJ-PART, jumped to from INPUT) inside the "
                     "receiving node's network namespace; real packets are dropped",
        "clock": "libfaketime (LD_PRELOAD with FAKETIME_TIMESTAMP_FILE) in the node process",
        "crash": "SIGKILL of the node process in its namespace, restarted by the harness",
        "pause": "SIGSTOP / SIGCONT of the node process",
        "packet": "tc netem (delay, loss) on the node's eth0 inside its namespace",
        "power": POWER_MECHANISM,
        "wipe": WIPE_MECHANISM,
    }

    def __init__(self, root: Path, cluster: ClusterSettings, session: Session,
                 clock: bool = False, store: Store | None = None, power: bool = False) -> None:
        require_netns_tools()
        ids = [f"n{i + 1}" for i in range(cluster.nodes)]
        self.net = NetnsNetwork(session, ids)
        specs = [NodeSpec(node, self.net.address(node), CLIENT_PORT, PEER_PORT) for node in ids]
        # faultfs mounts are made on the host before the nodes start; `ip netns exec` gives a
        # node a mount namespace that sees them
        super().__init__(root, cluster, session, clock=clock, specs=specs, store=store,
                         power=power)
        self.mechanisms = type(self).mechanisms  # real packet filtering, whatever the store
        self._packet: dict[str, dict[str, float]] = dict(session.faults.get("packet", {}))
        self._write_cluster_file()

    def _write_cluster_file(self) -> None:
        for s in self.specs:
            self.node_dir(s.id).mkdir(parents=True, exist_ok=True)
            if self.clock and not self._faketime_file(s.id).exists():
                self._faketime_file(s.id).write_text("+0\n")
        self.store.layout(self.root, self.specs)

    def _uses_loopback_filter(self) -> bool:
        return False  # every node has its own namespace and address: rules go inside it

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.net.create()
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.net.destroy()

    def _launch(self, node: str) -> None:
        spec = self._spec(node)
        directory = self.node_dir(node)
        directory.mkdir(parents=True, exist_ok=True)
        with self.log_path(node).open("ab") as log:
            log.write(f"--- harness: starting {spec.id} in {self.net.namespace(node)} "
                      f"at {time.ctime()}\n".encode())
        self._spawn(node, node, self._node_cmd(node), self.log_path(node), self._node_env(node))

    def _start_sidecars(self) -> None:
        """The store's helpers beside each node, inside its namespace: a partition cuts them
        off with their node (a crash or a pause of the node spares them)."""
        if not isinstance(self.store, Sidecars):
            return
        for spec in self.specs:
            for name, cmd in self.store.sidecars(spec, self.root).items():
                key = f"{spec.id}{SIDECAR_SEP}{name}"
                if matching_process(self.session.nodes.get(key)) is None:
                    self._spawn(spec.id, key, cmd, self.node_dir(spec.id) / f"{name}.log",
                                dict(os.environ))

    def _spawn(self, node: str, key: str, cmd: list[str], log_path: Path,
               env: dict[str, str]) -> None:
        """Run `cmd` in the node's namespace, recorded in the session as `key`."""
        # `ip netns exec` enters the namespace and execs the command: the pid stays the same
        argv = ["ip", "netns", "exec", self.net.namespace(node), *cmd]
        with log_path.open("ab") as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.node_dir(node), env=env,
                                     start_new_session=True)
        self._popen[key] = popen
        # recorded at once by pid and start time (exec keeps both), the command line once
        # `ip` has exec'd the command, so cleanup can always find it and never mistake it
        try:
            ident = process_identity(popen.pid)
            ident["cmdline"] = []
        except psutil.NoSuchProcess:
            ident = {"pid": popen.pid, "create_time": 0, "cmdline": []}
        self.session.nodes[key] = ident
        self.session.save()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and popen.poll() is None:
            try:
                if psutil.Process(popen.pid).cmdline() == cmd:
                    self.session.nodes[key] = process_identity(popen.pid)
                    self.session.save()
                    break
            except psutil.Error:
                break
            time.sleep(0.01)

    # -- partitions: iptables in the receiving node's namespace -------------------------------

    def _apply_grudge(self, nodes: list[str]) -> dict[str, str]:
        """Put each node's drop list in its namespace; works while it is paused or dead too."""
        if not self.net.record.get("created"):
            return {}

        def one(node: str) -> str | None:
            sources = [self._spec(peer).host for peer in self._grudge.get(node, [])]
            return self.net.exec_script(node, iptables.partition_script(sources))

        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            results = list(pool.map(one, nodes))
        return {node: err for node, err in zip(nodes, results, strict=True) if err}

    def partition_rules(self, node: str) -> list[str]:
        """The harness's iptables rules now in the node's namespace (for tests and reports)."""
        proc = _run(["ip", "netns", "exec", self.net.namespace(self._spec(node).id),
                     "sh", "-c", iptables.list_script()])
        return [line for line in proc.stdout.splitlines() if line.strip()]

    # -- packet faults: tc netem --------------------------------------------------------------

    def set_packet(self, node: str, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                   loss_percent: float = 0.0) -> None:
        script = iptables.netem_script(DEVICE, delay_ms, jitter_ms, loss_percent)
        err = self.net.exec_script(self._spec(node).id, script)
        if err:
            if "qdisc kind is unknown" in err:
                err = "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); " + err
            raise PlatformError(f"tc netem on {node}: {err}")
        self._packet[node] = {"delay_ms": delay_ms, "jitter_ms": jitter_ms,
                              "loss_percent": loss_percent}
        self.session.faults["packet"] = self._packet
        self.session.save()

    def heal_packet(self) -> dict[str, str]:
        errors = {}
        if self.net.record.get("created"):
            for node in self.node_ids():
                err = self.net.exec_script(node, iptables.netem_heal_script(DEVICE))
                if err:
                    errors[node] = err
        self._packet = {}
        self.session.faults.pop("packet", None)
        self.session.save()
        return errors
