"""Test hosts for the ssh platform: network namespaces on a bridge, each with its own sshd.

    python3 tests/sshhosts.py up DIR [--count 5]   # prints DIR/hosts.toml
    python3 tests/sshhosts.py down DIR

Each host is a namespace `djsh-T-hI` whose eth0 (a veth on bridge `djshbT`) has an address in
198.18.0.(16k).0/28 (k a free slot 0..15, claimed with an exclusive file; the netns and docker
platforms take 198.18.1-254.0/24 and 198.19.0.0/16, so they never meet). In it runs Debian's
OpenSSH server with a host key made here, accepting one test key for root. Nothing else of ours
runs there: the ssh platform sees only addresses, ports and keys. DIR gets the keys, a
known_hosts file, `hosts.toml` (each host with its own `dir`, since all namespaces share this
machine's filesystem) and `state.json`, from which `down` removes exactly what `up` made.
Needs root, iproute2, iptables and openssh-server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
CLAIMS = Path(os.environ.get("HARNESS_SSH_HOSTS_CLAIMS", "/tmp/dynamo-harness-sshhosts"))
SLOTS = range(16)  # 198.18.0.(16k)/28
START_TIMEOUT_S = 15.0


def missing() -> str | None:
    """Why test hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not os.path.exists(SSHD):
        return f"needs {SSHD} (apt-get install openssh-server)"
    return None


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def _claim_slot(owner: str) -> int:
    CLAIMS.mkdir(parents=True, exist_ok=True)
    in_use = _run(["ip", "-o", "-4", "addr", "show"])
    for k in SLOTS:
        path = CLAIMS / str(k)
        if path.exists():
            try:
                data = json.loads(path.read_text())
                alive = _pid_alive(int(data["pid"]))
            except (OSError, ValueError, KeyError):
                continue
            if alive or f"198.18.0.{16 * k + 1}/" in in_use:
                continue
            path.unlink(missing_ok=True)  # its owner died and its bridge is gone
        if f"198.18.0.{16 * k + 1}/" in in_use:
            continue
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"owner": owner, "pid": os.getpid()}, f)
        return k
    raise RuntimeError(f"no free test-host slot in 198.18.0.0/24 (claims in {CLAIMS})")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def up(directory: Path, count: int = 5) -> dict[str, Any]:
    """Make `count` hosts; returns the state (also written to DIR/state.json)."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(2)
    slot = _claim_slot(tag)
    base = 16 * slot
    state: dict[str, Any] = {
        "tag": tag, "slot": slot, "bridge": f"djshb{tag}", "gateway": f"198.18.0.{base + 1}",
        "forward": ["FORWARD", "-i", f"djshb{tag}", "-o", f"djshb{tag}", "-j", "ACCEPT",
                    "-m", "comment", "--comment", f"dynamo-harness ssh test hosts {tag}"],
        "hosts": [], "sshd": {}, "dir": str(directory),
        # an address on the bridge where nothing answers: "a host that is down"
        "down_address": f"198.18.0.{base + 14}",
    }
    for i in range(1, count + 1):
        state["hosts"].append({"name": f"h{i}", "namespace": f"djsh-{tag}-h{i}",
                               "veth": f"djshv{tag}{i}", "address": f"198.18.0.{base + 1 + i}"})
    (directory / "state.json").write_text(json.dumps(state, indent=1))  # before making anything
    try:
        _make_network(state)
        _make_keys(directory, state)
        for h in state["hosts"]:
            _start_sshd(directory, state, h)
        for h in state["hosts"]:
            _wait_port(h["address"], 22)
        _write_hosts_file(directory, state)
    except BaseException:
        down(directory)
        raise
    return state


def _make_network(state: dict[str, Any]) -> None:
    br = state["bridge"]
    lines = [f"link add {br} type bridge", f"addr add {state['gateway']}/28 dev {br}",
             f"link set {br} up"]
    for h in state["hosts"]:
        lines += [f"netns add {h['namespace']}",
                  f"link add {h['veth']} type veth peer name eth0 netns {h['namespace']}",
                  f"link set {h['veth']} master {br} up"]
    _run(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")
    for h in state["hosts"]:
        inside = [f"addr add {h['address']}/28 dev eth0", "link set eth0 up", "link set lo up"]
        _run(["ip", "-n", h["namespace"], "-batch", "-"], stdin="\n".join(inside) + "\n")
    # bridged frames pass FORWARD when br_netfilter is loaded (a Docker engine sets it to DROP)
    _run(["iptables", "-w", "5", "-I", *state["forward"]])


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)  # ssh-keygen would ask before overwriting
    path.with_suffix(".pub").unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)])


def _make_keys(directory: Path, state: dict[str, Any]) -> None:
    for name in ("id_test", "id_other"):  # id_other: a key no host accepts
        _keygen(directory / name)
    (directory / "authorized_keys").write_text((directory / "id_test.pub").read_text())
    known, wrong = [], []
    for h in state["hosts"]:
        d = directory / h["name"]
        d.mkdir(exist_ok=True)
        (d / "data").mkdir(exist_ok=True)
        _keygen(d / "host_key")
        _keygen(d / "impostor_key")  # a key the host does not have, for the wrong-key test
        key = (d / "host_key.pub").read_text().split()[:2]
        bad = (d / "impostor_key.pub").read_text().split()[:2]
        known.append(f"{h['address']} {' '.join(key)}")
        wrong.append(f"{h['address']} {' '.join(bad)}")
    (directory / "known_hosts").write_text("\n".join(known) + "\n")
    (directory / "known_hosts.impostors").write_text("\n".join(wrong) + "\n")


def _start_sshd(directory: Path, state: dict[str, Any], h: dict[str, Any]) -> None:
    d = directory / h["name"]
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {h['address']}", "Port 22", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "UseDNS no", "PrintMotd no", "MaxSessions 30",
        "MaxStartups 100", "Subsystem sftp internal-sftp", "LogLevel ERROR",
    ]) + "\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = (d / "sshd.log").open("ab")
    proc = subprocess.Popen(["ip", "netns", "exec", h["namespace"], SSHD, "-D", "-e",
                             "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    state["sshd"][h["name"]] = proc.pid
    (directory / "state.json").write_text(json.dumps(state, indent=1))


def _wait_port(address: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd on {address}:{port} did not answer within {START_TIMEOUT_S} s")


def _write_hosts_file(directory: Path, state: dict[str, Any]) -> None:
    lines = ["# made by tests/sshhosts.py: one namespace per host, each with its own sshd",
             "[defaults]", 'user = "root"', f'key = "{directory / "id_test"}"',
             f'known_hosts = "{directory / "known_hosts"}"',
             # this machine's Python (with aiohttp and msgpack), which every namespace shares
             f'python = "{sys.executable}"', "connect_timeout = 5", ""]
    for h in state["hosts"]:
        lines += ["[[hosts]]", f'name = "{h["name"]}"', f'address = "{h["address"]}"',
                  f'dir = "{directory / h["name"] / "data"}"', ""]
    (directory / "hosts.toml").write_text("\n".join(lines))


def host_pids(state: dict[str, Any]) -> list[int]:
    """Every process in the hosts' namespaces (sshd and anything started through it)."""
    pids: list[int] = []
    for h in state["hosts"]:
        out = _run(["ip", "netns", "pids", h["namespace"]], check=False)
        pids += [int(p) for p in out.split() if p.isdigit()]
    return pids


def down(directory: Path) -> list[str]:
    """Remove what `up` made in DIR (as its state.json says); safe to repeat."""
    path = directory / "state.json"
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    done = []
    for pid in host_pids(state):  # only processes inside our own namespaces
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            done.append(f"killed {pid}")
    for pid in state.get("sshd", {}).values():  # reap our own children (a pytest fixture's)
        deadline = time.monotonic() + 2
        with contextlib.suppress(ChildProcessError, OSError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.02)
    for h in state["hosts"]:
        if subprocess.run(["ip", "netns", "del", h["namespace"]],
                          capture_output=True).returncode == 0:
            done.append(f"namespace {h['namespace']}")
        subprocess.run(["ip", "link", "del", h["veth"]], capture_output=True)
    while subprocess.run(["iptables", "-w", "5", "-D", *state["forward"]],
                         capture_output=True).returncode == 0:
        done.append("FORWARD rule")
    if subprocess.run(["ip", "link", "del", state["bridge"]], capture_output=True).returncode == 0:
        done.append(f"bridge {state['bridge']}")
    claim = CLAIMS / str(state["slot"])
    with contextlib.suppress(OSError, ValueError):
        if json.loads(claim.read_text()).get("owner") == state["tag"]:
            claim.unlink()
    path.unlink()
    return done


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("up", "down"):
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if argv[0] == "up":
        why = missing()
        if why:
            print(f"cannot make ssh test hosts: {why}", file=sys.stderr)
            return 1
        count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 5
        state = up(directory, count)
        print(directory.resolve() / "hosts.toml")
        for h in state["hosts"]:
            print(f"{h['name']} {h['address']} (namespace {h['namespace']})", file=sys.stderr)
        return 0
    for line in down(directory):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
