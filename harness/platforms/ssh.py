"""The ssh platform: each node is a process on a real host the user lists (`--hosts hosts.toml`).

Jepsen's own model: this machine is the control node; it reaches every host over SSH (asyncssh,
one connection per host kept open for the run, host keys checked) and runs nothing on a machine
the hosts file does not name. A run's files live on each host under `<dir>/<session id>/`:
`run.json` (what the run made there, for `harness cleanup --hosts`), `src/` (the reference
store's source tree, copied by sftp and run with the host's Python) and `nodes/` (the store's
files, `Store.layout`, the same as the run directory's `nodes/`; each node's data and log in
`nodes/<id>/`). Outside stores (etcd, Redis) run the host's own programs.

A node is started detached (`setsid`, its pid and start time in `nodes/<id>/node.pid`), so it
outlives a dropped connection; every signal checks the start time first, so a recycled pid is
never hit. Crash is `kill -9` and a new start; pause is SIGSTOP/SIGCONT; clock skew is libfaketime
preloaded into the node, its offset file rewritten over SSH. Partitions are iptables DROP rules
in a chain of the run's own, `DJH-<tag>`, jumped to from INPUT on the receiving host; a rule
matches the peer's address and only TCP to or from the run's own ports, so other programs on the
hosts (and another run on other ports) are never cut. Heal deletes the jump and the chain.

At teardown (also after Ctrl-C) each host's processes are stopped, the chain removed, the node's
folder (log and data) copied into the run directory's `nodes/<id>/`, and the host's run folder
deleted. The history's timestamps are this machine's alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import secrets
import shlex
import socket
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.platforms.base import NodeSpec, PlatformError, SpecPlatform
from harness.platforms.local import FAKETIME_ENV, LIBFAKETIME_CANDIDATES, SIDECAR_SEP
from harness.platforms.ssh_conn import Fleet, Trust
from harness.platforms.ssh_hosts import Host, HostsFile
from harness.settings import ClusterSettings
from harness.state import Session, matching_process
from harness.stores import Store
from harness.stores.base import Sidecars

EXTRA_KEY = "ssh"
MARKER = "run.json"
CHAIN_RE = re.compile(r"DJH-[0-9a-f]{8}")
SESSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,80}")
MULTIPORT_MAX = 15  # iptables' multiport match takes at most 15 ports
INSTALL = ("the reference store's source tree (node/) copied by sftp into the run's folder on "
           "each host and run with the host's Python (3.11+, with httptools, yarl>=1.9 and "
           "msgpack); etcd and Redis: the host's own programs")

# -- shell run on the hosts: POSIX sh, pure functions of what is wanted -------------------------

# `st PID` prints "STATE STARTTIME" (fields 3 and 22 of /proc/PID/stat, after the command name,
# which may hold spaces); `alive F` is true while the process in pid file F (pid and start time)
# runs and is not a zombie; `stop_proc F` sends SIGCONT, SIGTERM, then SIGKILL, bounded.
SH_LIB = r"""
st() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1,20; }
alive() {
  [ -s "$1" ] || return 1
  read -r _pid _st < "$1" || return 1
  _s=$(st "$_pid"); [ -n "$_s" ] || return 1
  [ "${_s#* }" = "$_st" ] && [ "${_s%% *}" != Z ]
}
sig() { if alive "$1"; then kill -"$2" "$_pid"; fi; }
wait_gone() {
  _i=0; while alive "$1" && [ $_i -lt "$2" ]; do sleep 0.05; _i=$((_i+1)); done
  ! alive "$1"
}
stop_proc() {
  if alive "$1"; then
    kill -CONT "$_pid" 2>/dev/null; kill -TERM "$_pid" 2>/dev/null
    wait_gone "$1" 60 || { sig "$1" KILL; wait_gone "$1" 100; } || return 1
  fi
  rm -f "$1"
}
"""


def ipt(sudo: bool) -> str:
    return ("sudo -n " if sudo else "") + "iptables -w 5"


def partition_script(chain: str, sources: list[str], ports: list[int], sudo: bool) -> str:
    """Replace the chain's rules: drop TCP from each source to or from the run's ports."""
    if not CHAIN_RE.fullmatch(chain):
        raise ValueError(f"not a chain of this platform: {chain!r}")
    if not sources:
        return heal_script(chain, sudo)
    i = ipt(sudo)
    ps = sorted(set(ports))
    groups = [ps[k:k + MULTIPORT_MAX] for k in range(0, len(ps), MULTIPORT_MAX)]
    lines = ["set -e", f"{i} -N {chain} 2>/dev/null || true", f"{i} -F {chain}"]
    for src in sorted(set(sources)):
        for group in groups:
            lines.append(f"{i} -A {chain} -s {shlex.quote(src)} -p tcp -m multiport --ports "
                         f"{','.join(map(str, group))} -j DROP")
    # first in INPUT, so nothing accepts the packets before our chain sees them
    lines.append(f"{i} -C INPUT -j {chain} 2>/dev/null || {i} -I INPUT 1 -j {chain}")
    return "\n".join(lines) + "\n"


def heal_script(chain: str, sudo: bool) -> str:
    """Remove the run's chain and its jump (a no-op when absent); nothing else is touched."""
    if not CHAIN_RE.fullmatch(chain):
        raise ValueError(f"not a chain of this platform: {chain!r}")
    i = ipt(sudo)
    return (f"if {i} -n -L {chain} >/dev/null 2>&1; then\n"
            f"  while {i} -D INPUT -j {chain} 2>/dev/null; do :; done\n"
            f"  {i} -F {chain} && {i} -X {chain}\n"
            "fi\n")


def launch_script(key: str, cwd: str, log: str, pidfile: str, env: dict[str, str],
                  argv: list[str]) -> str:
    """Start argv detached in cwd, output appended to log; write 'PID STARTTIME' to pidfile."""
    q = shlex.quote
    assignments = [f"{k}={v}" for k, v in sorted(env.items())]
    return SH_LIB + "\n".join([
        f"cd {q(cwd)} || exit 1",
        f"echo \"--- harness: starting {key} on $(hostname) at $(date)\" >> {q(log)}",
        f"rm -f {q(pidfile)} {q(pidfile + '.new')}",
        # the inner sh writes its own pid, then execs the program: the pid is the program's
        f"setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {q(pidfile + '.new')} "
        f"env {' '.join(q(a) for a in assignments)} {shlex.join(argv)} "
        f">> {q(log)} 2>&1 < /dev/null &",
        f"_i=0; while [ ! -s {q(pidfile + '.new')} ] && [ $_i -lt 200 ]; do sleep 0.02; "
        "_i=$((_i+1)); done",
        f"[ -s {q(pidfile + '.new')} ] || {{ echo 'the process did not start' >&2; exit 1; }}",
        f"_p=$(cat {q(pidfile + '.new')}); _s=$(st \"$_p\")",
        f"echo \"$_p ${{_s#* }}\" > {q(pidfile + '.new')} && mv {q(pidfile + '.new')} "
        f"{q(pidfile)}",
    ]) + "\n"


def remove_run_script(run_dir: str, chain: str | None, sudo: bool) -> str:
    """Stop every process a run folder's pid files name, remove its chain, delete the folder.
    Exit 0 only when everything is gone."""
    q = shlex.quote(run_dir)
    lines = [SH_LIB, "bad=0",
             f"for f in {q}/nodes/*/*.pid; do [ -e \"$f\" ] || continue; "
             "stop_proc \"$f\" || { echo \"still running: $f\" >&2; bad=1; }; done"]
    if chain:
        lines.append(f"(\n{heal_script(chain, sudo)}) || bad=1")
    lines += [f"[ $bad = 0 ] && rm -rf {q}", "exit $bad"]
    return "\n".join(lines) + "\n"


def remote_argv(argv: list[str], host: Host) -> list[str]:
    """A store's argv as the host runs it: this Python becomes the host's, and a program named
    by a path on this machine is looked up on the host's PATH."""
    if not argv:
        return argv
    program = argv[0]
    if program == sys.executable or os.path.basename(program).startswith("python3"):
        program = host.python
    elif os.path.isabs(program):
        program = os.path.basename(program)
    return [program, *argv[1:]]


def source_tree() -> Path:
    """The reference store's package folder (found without importing it: harness starts the
    node as a program, never imports it)."""
    spec = importlib.util.find_spec("node")
    if spec is None or not spec.submodule_search_locations:
        raise PlatformError("the reference store's package (node/) is not installed here")
    return Path(list(spec.submodule_search_locations)[0])


def bundle(root: Path, with_source: bool) -> bytes:
    """The tar.gz every host gets: `nodes/` (the store's files) and, for the reference store,
    `src/node/` (its source)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root, arcname="nodes")
        if with_source:
            src = source_tree()
            tar.add(src, arcname="src/node",
                    filter=lambda ti: None if "__pycache__" in ti.name
                    or ti.name.endswith(".pyc") else ti)
    return buf.getvalue()


# -- the platform -------------------------------------------------------------------------------


class SshPlatform(SpecPlatform):
    name = "ssh"
    ready_timeout_s = 30.0  # real hosts, and a Python start on a loaded one
    mechanisms = {
        "partition": "iptables DROP rules on the receiving host, in the run's own chain DJH-<tag> "
                     "(jumped to from INPUT), matching the peer's address and the run's ports; "
                     "real packets are dropped",
        "clock": "libfaketime on the host (LD_PRELOAD with FAKETIME_TIMESTAMP_FILE, the offset "
                 "file rewritten over SSH)",
        "crash": "kill -9 of the node process over SSH, started again by the harness",
        "pause": "SIGSTOP / SIGCONT of the node process over SSH",
    }

    def __init__(self, root: Path, cluster: ClusterSettings, session: Session,
                 hosts: HostsFile, trust: Trust, clock: bool = False,
                 store: Store | None = None, power: bool = False) -> None:
        from harness.stores.dynamo import DynamoStore

        if power:
            raise PlatformError("the power nemesis needs faultfs mounts, which the ssh platform "
                                "does not make")
        if cluster.nodes > len(hosts.hosts):
            raise PlatformError(f"{hosts.path} lists {len(hosts.hosts)} hosts, and "
                                f"{cluster.nodes} nodes need a host each")
        self.root = root.resolve()
        self.cluster = cluster
        self.session = session
        self.clock = clock
        self.store = store if store is not None else DynamoStore(cluster)
        self.ready_probe = self.store.ready_probe
        self.admin_headers = self.store.admin_headers()
        self.trust = trust
        self.connect_timeout = hosts.connect_timeout
        chosen = hosts.hosts[:cluster.nodes]
        ids = [f"n{i + 1}" for i in range(len(chosen))]
        self.host_of: dict[str, Host] = dict(zip(ids, chosen, strict=True))
        self.specs = [NodeSpec(node, h.address, h.client_port, h.peer_port)
                      for node, h in self.host_of.items()]
        self._by_id = {s.id: s for s in self.specs}
        self._paused: set[str] = set(session.faults.get("paused", []))
        self._grudge: dict[str, list[str]] = dict(session.faults.get("partition", {}))
        record = session.extra.get(EXTRA_KEY)
        if record is None:
            if not SESSION_RE.fullmatch(session.id):
                raise PlatformError(f"session id {session.id!r} cannot name a folder")
            record = {
                "tag": secrets.token_hex(4), "hosts_file": hosts.path,
                "hosts": [h.to_json() for h in chosen],
                "nodes": {node: h.name for node, h in self.host_of.items()},
                "remote": {h.name: f"{h.dir.rstrip('/')}/{session.id}" for h in chosen},
                "trust": {"known_hosts": trust.known_hosts, "accept": trust.accept},
                "connect_timeout": hosts.connect_timeout,
                "touched": [],  # hosts on which something of the run may exist
            }
            record["chain"] = f"DJH-{record['tag']}"
            session.extra[EXTRA_KEY] = record
        self.record = record
        self.chain: str = record["chain"]
        self.fleet: Fleet | None = None
        self.faketime: dict[str, str] = {}  # host name -> libfaketime there
        session.extra.update({"platform": self.name, "root": str(self.root)})
        session.save()
        self._write_files()

    @classmethod
    def from_settings(cls, root: Path, settings: Any, session: Session, store: Store,
                      clock: bool) -> SshPlatform:
        """The platform for `harness run --platform ssh` (flags checked by harness.options)."""
        from harness.platforms.ssh_hosts import load_hosts

        if not settings.hosts:
            raise PlatformError("the ssh platform needs --hosts hosts.toml")
        hosts = load_hosts(settings.hosts)
        trust = make_trust(hosts, settings.known_hosts, settings.insecure_accept_host_keys)
        return cls(root, settings.cluster, session, hosts, trust, clock=clock, store=store)

    def _write_files(self) -> None:
        for s in self.specs:
            self.node_dir(s.id).mkdir(parents=True, exist_ok=True)
        self.store.layout(self.root, self.specs)

    # -- where things are ---------------------------------------------------------------------

    def host(self, node: str) -> Host:
        return self.host_of[self._spec(node).id]

    def remote_run(self, node: str) -> str:
        return self.record["remote"][self.host(node).name]

    def remote_node_dir(self, node: str) -> str:
        return f"{self.remote_run(node)}/nodes/{self._spec(node).id}"

    def _fleet(self) -> Fleet:
        if self.fleet is None:
            raise PlatformError("the ssh platform is not started")
        return self.fleet

    def _sh(self, node: str, script: str, timeout: float = 30.0) -> tuple[int, str]:
        res = self._fleet().run(self.host(node).name, script, timeout)
        return res.code, (res.err or res.out).strip()

    def test_info(self) -> dict[str, Any]:
        """For test.json and the report: each node's host and how its key was checked."""
        fleet = self.fleet
        prints = fleet.fingerprints if fleet else self.record.get("fingerprints", {})
        return {
            "hosts": {node: f"{h.where}, host key {prints.get(h.name, '?')}"
                      for node, h in self.host_of.items()},
            "host_keys": self.trust.describe(),
            "install": INSTALL,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        hosts = list(self.host_of.values())
        self.fleet = Fleet(hosts, self.trust, self.connect_timeout)
        self.fleet.connect_all()  # every host answers, or nothing is done on any
        self.record["fingerprints"] = dict(self.fleet.fingerprints)
        self.record["host_keys"] = dict(self.fleet.public_keys)  # cleanup pins them
        self.session.save()
        self._preflight()
        self.record["touched"] = [h.name for h in hosts]  # recorded before anything is made
        self.session.save()
        self._install()
        with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
            list(pool.map(self._launch, self.node_ids()))
            list(pool.map(self._wait_ready, self.node_ids()))
        self._start_sidecars()
        errors = self._apply_grudge(self.node_ids())
        if errors:
            raise PlatformError(f"putting partitions in place: {errors}")

    def _preflight(self) -> None:
        """Look, change nothing: can each host run this store with these faults?"""
        scripts = {}
        for spec in self.specs:
            h = self.host_of[spec.id]
            argvs = [self.store.command(spec, Path("/x"))]
            if isinstance(self.store, Sidecars):
                argvs += list(self.store.sidecars(spec, Path("/x")).values())
            programs = {remote_argv(argv, h)[0] for argv in argvs}
            scripts[h.name] = preflight_script(
                h, programs=sorted(programs - {h.python}), python=h.python in programs,
                iptables=True, clock=self.clock)
        results = self._fleet().run_all(scripts, timeout=30)
        problems = []
        for name, res in results.items():
            host = next(h for h in self.host_of.values() if h.name == name)
            found = [line[8:].strip() for line in res.out.splitlines()
                     if line.startswith("PROBLEM ")]
            if res.code != 0 and not found:
                found = [res.message()]
            problems += [f"host {host.where}: {p}" for p in found]
            for line in res.out.splitlines():
                if line.startswith("FAKETIME "):
                    self.faketime[name] = line[9:].strip()
        if problems:
            self._fleet().close()
            raise PlatformError("the hosts cannot run this test (nothing was done on any of "
                                "them):\n  " + "\n  ".join(problems))

    def _install(self) -> None:
        from harness.stores.dynamo import DynamoStore

        data = bundle(self.root, with_source=isinstance(self.store, DynamoStore))
        marker = {"session": self.session.id, "control": socket.gethostname(),
                  "owner": self.session.owner, "chain": self.chain,
                  "local_run": str(self.root.parent), "started": time.time()}
        fleet = self._fleet()
        with tempfile.TemporaryDirectory(prefix="ssh-bundle-") as tmp:
            local = Path(tmp) / "bundle.tgz"
            local.write_bytes(data)

            def one(node: str) -> str | None:
                h, run = self.host(node), self.remote_run(node)
                # 0700: the cluster file holds the admin token (and any internode secret)
                mk = fleet.run(h.name, f"umask 077 && mkdir -p {shlex.quote(run)} && "
                               f"chmod 700 {shlex.quote(run)} && cat > "
                               f"{shlex.quote(run + '/' + MARKER)} <<'EOF'\n"
                               f"{json.dumps(marker | {'host': h.name})}\nEOF\n")
                if mk.code != 0:
                    return f"host {h.where}: making {run}: {mk.message()}"
                fleet.put_file(h.name, local, f"{run}/bundle.tgz", timeout=60)
                ex = fleet.run(h.name, f"cd {shlex.quote(run)} && tar -xzf bundle.tgz && "
                               "rm -f bundle.tgz")
                return None if ex.code == 0 else f"host {h.where}: unpacking: {ex.message()}"

            with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
                errors = [e for e in pool.map(one, self.node_ids()) if e]
        if errors:
            raise PlatformError("installing on the hosts failed:\n  " + "\n  ".join(errors))

    def stop(self) -> None:
        """Stop everything on every host, collect each node's folder, remove the run's files
        there; idempotent. What it could not do is said on stderr and in ssh-teardown.txt."""
        touched = list(self.record.get("touched", []))
        errors: list[str] = []
        if touched and self.fleet is None:
            self.fleet = Fleet(list(self.host_of.values()), self.trust, self.connect_timeout)
            errors += self.fleet.connect_some()  # each host that answers is cleaned
        if touched and self.fleet is not None and self.fleet.conns:
            errors += self._collect_and_remove(touched)
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        self._paused.clear()
        self._grudge.clear()
        self.session.faults.clear()
        if errors:
            # said, not raised: the run's verdict stands, and the hosts' run.json files let
            # `harness cleanup --hosts` finish the job
            text = ("teardown could not do everything on some hosts (`harness cleanup --hosts "
                    f"{self.record['hosts_file']}` removes what is left):\n  "
                    + "\n  ".join(errors))
            print(text, file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                (self.root / "ssh-teardown.txt").write_text(text + "\n")
            self.record["touched"] = [h.name for h in self.host_of.values()
                                      if any(h.where in e for e in errors)]
            self.session.save()
            return
        self.session.extra.pop(EXTRA_KEY, None)
        self.session.save()

    def _collect_and_remove(self, touched: list[str]) -> list[str]:
        fleet = self._fleet()
        by_name = {h.name: (node, h) for node, h in self.host_of.items()}

        def one(name: str) -> str | None:
            node, h = by_name[name]
            if name not in fleet.conns:
                return f"host {h.where}: not connected"
            run = self.remote_run(node)
            q = shlex.quote
            # stop first (logs complete), pack the node's folder, then remove it all
            stop = fleet.run(name, SH_LIB + f"for f in {q(run)}/nodes/*/*.pid; do "
                             "[ -e \"$f\" ] && stop_proc \"$f\"; done; "
                             f"[ -d {q(run)}/nodes/{node} ] || exit 0; "
                             f"tar -czf {q(run)}/collect.tgz -C {q(run)}/nodes {node}",
                             timeout=40)
            note = None
            if stop.code == 0:
                try:
                    self._fetch(name, f"{run}/collect.tgz")
                except (PlatformError, OSError, tarfile.TarError) as e:
                    note = f"host {h.where}: collecting {node}'s files failed: {e}"
            else:
                note = f"host {h.where}: stopping and packing failed: {stop.message()}"
            rm = fleet.run(name, remove_run_script(run, self.chain, h.sudo), timeout=40)
            if rm.code != 0:
                return f"host {h.where}: removing {run} failed: {rm.message()}"
            return note

        with ThreadPoolExecutor(max_workers=max(1, len(touched))) as pool:
            results = list(pool.map(one, touched))
        return [e for e in results if e]

    def _fetch(self, host: str, remote: str) -> None:
        with tempfile.TemporaryDirectory(prefix="ssh-collect-") as tmp:
            local = Path(tmp) / "collect.tgz"
            self._fleet().get_file(host, remote, local, timeout=120)
            with tarfile.open(local) as tar:
                tar.extractall(self.root, filter="data")

    # -- one node -----------------------------------------------------------------------------

    def _pidfile(self, node: str, name: str = "node") -> str:
        return f"{self.remote_node_dir(node)}/{name}.pid"

    def _node_env(self, node: str) -> dict[str, str]:
        env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{self.remote_run(node)}/src"}
        if self.clock:
            env.update({"LD_PRELOAD": self.faketime[self.host(node).name],
                        "FAKETIME_TIMESTAMP_FILE": f"{self.remote_node_dir(node)}/faketime.rc",
                        **FAKETIME_ENV})
        return env

    def _launch(self, node: str) -> None:
        spec, h = self._spec(node), self.host(node)
        remote_root = Path(f"{self.remote_run(node)}/nodes")
        argv = remote_argv(self.store.command(spec, remote_root), h)
        d = self.remote_node_dir(node)
        pre = ""
        if self.clock:
            pre = f"[ -f {shlex.quote(d + '/faketime.rc')} ] || echo +0 > " \
                  f"{shlex.quote(d + '/faketime.rc')}\n"
        code, msg = self._sh(node, pre + launch_script(
            node, d, f"{d}/node.log", self._pidfile(node), self._node_env(node), argv))
        if code != 0:
            raise PlatformError(f"starting {node} on host {h.where} failed: {msg}")

    def _start_sidecars(self) -> None:
        if not isinstance(self.store, Sidecars):
            return
        for spec in self.specs:
            remote_root = Path(f"{self.remote_run(spec.id)}/nodes")
            for name, argv in self.store.sidecars(spec, remote_root).items():
                if self.is_running(spec.id, name):
                    continue
                d = self.remote_node_dir(spec.id)
                code, msg = self._sh(spec.id, launch_script(
                    f"{spec.id}{SIDECAR_SEP}{name}", d, f"{d}/{name}.log",
                    self._pidfile(spec.id, name), {}, remote_argv(argv, self.host(spec.id))))
                if code != 0:
                    raise PlatformError(f"starting {name} beside {spec.id} on host "
                                        f"{self.host(spec.id).where} failed: {msg}")

    def is_running(self, node: str, name: str = "node") -> bool:
        code, _ = self._sh(node, SH_LIB + f"alive {shlex.quote(self._pidfile(node, name))}")
        return code == 0

    def _exited_at_start(self, node: str) -> str | None:
        return None if self.is_running(node) else "exited"

    def _log_tail(self, node: str, lines: int = 15) -> str:
        try:
            code, out = self._sh(node, f"tail -n {int(lines)} "
                                       f"{shlex.quote(self.remote_node_dir(node) + '/node.log')}")
        except PlatformError as e:
            return f"(log not readable: {e})"
        return out if code == 0 else "(no log)"

    def answers(self, node: str) -> bool:
        return self.store.is_ready(self._spec(node))

    def pids(self) -> dict[str, int]:
        return {}  # the nodes are on other machines: no local resource sampling

    def kill(self, node: str) -> None:
        pf = shlex.quote(self._pidfile(node))
        code, msg = self._sh(node, SH_LIB + f"sig {pf} KILL; wait_gone {pf} 200")
        if code != 0:
            raise PlatformError(f"kill -9 of {node} on host {self.host(node).where}: "
                                f"{msg or 'still running'}")
        self._paused.discard(node)
        self._save_faults()

    def wipe(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        # the data is on the remote hosts; `root` here only receives it at teardown
        raise PlatformError("the ssh platform does not wipe nodes' data (it lives on the remote "
                            "hosts); use --platform local, netns or docker")

    def restart(self, node: str) -> None:
        if self.is_running(node):
            return
        self._launch(node)
        self._wait_ready(node)  # the host's rules outlived the process: nothing to put back

    def pause(self, node: str) -> None:
        code, _ = self._sh(node, SH_LIB + f"alive {shlex.quote(self._pidfile(node))} && "
                                          "kill -STOP $_pid")
        if code != 0:
            raise PlatformError(f"cannot pause {node}: it is not running")
        self._paused.add(node)
        self._save_faults()

    def resume(self, node: str) -> None:
        self._sh(node, SH_LIB + f"sig {shlex.quote(self._pidfile(node))} CONT")
        self._paused.discard(node)
        self._save_faults()

    # -- clocks -------------------------------------------------------------------------------

    def set_clock_offset(self, node: str, seconds: float) -> None:
        if not self.clock:
            raise PlatformError("clock faults need the cluster started with libfaketime "
                                "(choose the clock nemesis)")
        path = shlex.quote(f"{self.remote_node_dir(node)}/faketime.rc")
        # written whole, then renamed: libfaketime must never read a half-written file
        code, msg = self._sh(node, f"printf '%s\\n' {seconds:+.6f} > {path}.tmp && "
                                   f"mv {path}.tmp {path}")
        if code != 0:
            raise PlatformError(f"setting {node}'s clock on host {self.host(node).where}: {msg}")
        self.session.faults.setdefault("clock", {})[node] = seconds
        self.session.save()

    # -- partitions ---------------------------------------------------------------------------

    def heal_partition(self) -> dict[str, str]:
        self._grudge = {}
        self._save_faults()
        return self._apply_grudge(self.node_ids())

    def _apply_grudge(self, nodes: list[str]) -> dict[str, str]:
        if not self.record.get("touched") or self.fleet is None:
            return {}
        ports = sorted({p for s in self.specs for p in (s.client_port, s.peer_port)})
        scripts = {}
        for node in nodes:
            sources = [self._spec(peer).host for peer in self._grudge.get(node, [])]
            scripts[self.host(node).name] = partition_script(self.chain, sources, ports,
                                                             self.host(node).sudo)
        results = self.fleet.run_all(scripts, timeout=20)
        node_of = {self.host(n).name: n for n in nodes}
        return {node_of[name]: res.message() for name, res in results.items() if res.code != 0}

    def partition_rules(self, node: str) -> list[str]:
        """The run's rules now on the node's host (for tests and reports)."""
        _, out = self._sh(node, f"{ipt(self.host(node).sudo)} -S {self.chain} 2>/dev/null "
                                "|| true")
        return [line for line in out.splitlines() if line.strip()]

    def _save_faults(self) -> None:
        self.session.faults["paused"] = sorted(self._paused)
        self.session.faults["partition"] = self._grudge
        self.session.save()


def preflight_script(host: Host, programs: list[str], python: bool, iptables: bool,
                     clock: bool) -> str:
    """Print `PROBLEM <what>` for each thing the host lacks, `FAKETIME <path>` if asked."""
    q = shlex.quote
    lines = ["p() { echo \"PROBLEM $*\"; }",
             "command -v setsid >/dev/null || p 'setsid not found (util-linux)'",
             "command -v tar >/dev/null || p 'tar not found'",
             f"mkdir -p {q(host.dir)} 2>/dev/null && [ -w {q(host.dir)} ] || "
             f"p {q(f'cannot write to {host.dir} (dir in the hosts file)')}"]
    for prog in programs:
        lines.append(f"command -v {q(prog)} >/dev/null || "
                     f"p {q(f'{prog} not found on the PATH of {host.user}')}")
    if python:
        # the packages' metadata, not an import: importing them on five hosts at once costs
        # time; the node decodes paths as yarl 1.9 does, newer than Debian 12's 1.8
        check = ("import sys, importlib.metadata as m\n"
                 "assert sys.version_info >= (3, 11), 'Python ' + sys.version.split()[0]\n"
                 "for p in ('httptools', 'yarl', 'msgpack'):\n"
                 "    try: v = m.version(p)\n"
                 "    except m.PackageNotFoundError: sys.exit('no ' + p)\n"
                 "    if p == 'yarl' and tuple(map(int, v.split('.')[:2])) < (1, 9):\n"
                 "        sys.exit('yarl ' + v + ' is older than 1.9')\n")
        lines.append(f"_e=$({q(host.python)} -c {q(check)} 2>&1) || "
                     f"p \"{host.python} cannot run the reference store: "
                     "$(echo \"$_e\" | tail -n 1) (it needs Python "
                     "3.11+ with httptools, yarl>=1.9 and msgpack: python3 -m pip install "
                     "httptools 'yarl>=1.9' msgpack there, or python = a virtualenv's python3 "
                     "in the hosts file)\"")
    if iptables:
        how = "with sudo -n" if host.sudo else f"as {host.user}"
        why = (f"iptables does not work {how} (it needs root: user root, or sudo = true with "
               "passwordless sudo; apt-get install iptables)")
        lines.append(f"{ipt(host.sudo)} -S INPUT >/dev/null 2>&1 || p {q(why)}")
    if clock:
        candidates = [host.faketime] if host.faketime else [str(p) for p in
                                                             LIBFAKETIME_CANDIDATES]
        lines.append("_f=''; for c in " + " ".join(q(c) for c in candidates)
                     + "; do [ -f \"$c\" ] && { _f=$c; break; }; done")
        why = ("libfaketime not found (apt-get install faketime, or faketime = PATH in the "
               "hosts file)")
        lines.append(f"if [ -n \"$_f\" ]; then echo \"FAKETIME $_f\"; else p {q(why)}; fi")
    return "\n".join(lines) + "\n"


def make_trust(hosts: HostsFile, known_hosts: str | None, accept: bool) -> Trust:
    """The host-key policy: --insecure-accept-host-keys, else --known-hosts, else the hosts
    file's known_hosts, else ~/.ssh/known_hosts."""
    if accept:
        return Trust(accept=True)
    path = known_hosts or hosts.known_hosts or str(Path("~/.ssh/known_hosts").expanduser())
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise PlatformError(f"no known-hosts file at {path}: give one with --known-hosts (or "
                            "known_hosts in the hosts file), or pass --insecure-accept-host-keys "
                            "to accept and record whatever keys the hosts present")
    return Trust(known_hosts=path)


# -- cleanup ------------------------------------------------------------------------------------


def _hosts_of(record: dict[str, Any]) -> list[Host]:
    return [Host(**h) for h in record.get("hosts", [])]


def remove_recorded(record: dict[str, Any], owner: str) -> tuple[list[str], bool]:
    """`harness cleanup` for a session record: on each host the run touched (and only those,
    all of them in its hosts file), stop its processes, remove its chain and its folder. The
    host keys are pinned to those seen when the run started."""
    hosts = [h for h in _hosts_of(record) if h.name in record.get("touched", [])]
    if not hosts:
        return [], True
    trust_rec = record.get("trust", {})
    pinned = record.get("host_keys") or {}
    trust = (Trust(pinned=pinned) if pinned
             else Trust(known_hosts=trust_rec.get("known_hosts")))
    fleet = Fleet(hosts, trust, float(record.get("connect_timeout", 10)))
    done: list[str] = []
    complete = True
    try:
        errors = fleet.connect_some()
        done += [f"not reached: {e}" for e in errors]
        complete = not errors
        scripts = {h.name: remove_run_script(record["remote"][h.name], record.get("chain"),
                                             h.sudo) for h in hosts if h.name in fleet.conns}
        for name, res in fleet.run_all(scripts, timeout=60).items():
            if res.code == 0:
                done.append(f"host {name}: {record['remote'][name]} and chain "
                            f"{record.get('chain')}")
            else:
                done.append(f"host {name}: not removed: {res.message()}")
                complete = False
    finally:
        fleet.close()
    return done, complete


def describe_recorded(record: dict[str, Any]) -> list[str]:
    return [f"on host {name}: {record['remote'][name]}, iptables chain {record.get('chain')}"
            for name in record.get("touched", [])]


def cleanup_hosts(hosts: HostsFile, trust: Trust, force: bool = False,
                  dry_run: bool = False) -> list[str]:
    """`harness cleanup --hosts`: on every host of the file, find the run folders under its
    `dir` (their run.json), and remove each whose run is over: its processes, its chain, its
    folder. A run still going on this machine, or started from another one, is left alone
    unless `force`."""
    fleet = Fleet(hosts.hosts, trust, hosts.connect_timeout)
    lines: list[str] = []
    try:
        lines += [f"not reached: {e}" for e in fleet.connect_some()]
        listing = {h.name: f"for f in {shlex.quote(h.dir)}/*/{MARKER}; do [ -f \"$f\" ] && "
                           "{ echo \"@@ $f\"; cat \"$f\"; echo; }; done; true"
                   for h in hosts.hosts if h.name in fleet.conns}
        me = socket.gethostname()
        scripts: dict[str, list[str]] = {}
        for name, res in fleet.run_all(listing).items():
            h = hosts.host(name)
            for path, marker in _markers(res.out):
                run = path.rsplit("/", 1)[0]
                sid = str(marker.get("session", ""))
                if (not SESSION_RE.fullmatch(sid) or run != f"{h.dir.rstrip('/')}/{sid}"):
                    lines.append(f"host {name}: {run}: not a run folder of ours; left alone")
                    continue
                chain = marker.get("chain")
                if chain is not None and not CHAIN_RE.fullmatch(str(chain)):
                    chain = None
                mine = marker.get("control") == me
                if not force and mine and matching_process(marker.get("owner")) is not None:
                    lines.append(f"host {name}: {run}: run still in progress here; left alone")
                    continue
                if not force and not mine:
                    lines.append(f"host {name}: {run}: started from {marker.get('control')}, "
                                 "not this machine; left alone (--force removes it)")
                    continue
                if dry_run:
                    lines.append(f"host {name}: would remove {run} (chain {chain})")
                    continue
                scripts.setdefault(name, []).append(remove_run_script(run, chain, h.sudo))
                lines.append(f"host {name}: removing {run} and chain {chain}")
        if scripts:
            # one subshell per run folder: each ends with its own exit status
            joined = {n: "bad=0\n" + "".join(f"(\n{s}) || bad=1\n" for s in ss) + "exit $bad\n"
                      for n, ss in scripts.items()}
            for name, res in fleet.run_all(joined, timeout=120).items():
                lines.append(f"host {name}: done" if res.code == 0
                             else f"host {name}: not all removed: {res.message()}")
        if not scripts and not dry_run:
            lines.append(f"nothing of ours left on {len(fleet.conns)} reachable host(s)")
    finally:
        fleet.close()
    return lines


def _markers(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in text.split("@@ ")[1:]:
        path, _, body = chunk.partition("\n")
        try:
            data = json.loads(body.strip())
        except ValueError:
            data = {}
        out.append((path.strip(), data if isinstance(data, dict) else {}))
    return out


__all__ = ["SshPlatform", "cleanup_hosts", "make_trust", "remove_recorded"]
