"""Addresses and names for the real platforms: one free 198.18.N.0/24 and a short tag per cluster.

Only 198.18.0.0/15 (the range reserved for benchmark testing) is used; 198.19.0.0/16 is left to
the Docker daemon's own pool, so clusters take 198.18.N.0/24 with N in 1..254. Several runs and
test sessions share the machine, so a subnet is claimed with an exclusive file in a machine-wide
folder (whatever the state directory), and one that any host interface already uses is skipped.
A claim whose owner process is gone and whose subnet no interface uses is stale and reclaimed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

CLAIM_DIR_ENV = "HARNESS_SUBNET_DIR"
DEFAULT_CLAIM_DIR = Path("/tmp/dynamo-harness-subnets")
FIRST_N, LAST_N = 1, 254
NODE_HOST_BASE = 10  # n1 is .11, n2 .12, ...; .1 is the host side (bridge or gateway)
MAX_NODES = 240


def claim_dir() -> Path:
    path = Path(os.environ.get(CLAIM_DIR_ENV) or DEFAULT_CLAIM_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Subnet:
    """198.18.N.0/24: the host side is .1, node i (0-based) is .(11 + i)."""

    n: int

    @property
    def cidr(self) -> str:
        return f"198.18.{self.n}.0/24"

    @property
    def gateway(self) -> str:
        return f"198.18.{self.n}.1"

    def node_address(self, index: int) -> str:
        if not 0 <= index < MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes fit in one /24 (asked for node {index})")
        return f"198.18.{self.n}.{NODE_HOST_BASE + 1 + index}"


def new_tag() -> str:
    """5 hex digits: short enough for 15-character interface names, unique enough per machine."""
    return secrets.token_hex(3)[:5]


def subnets_in_use() -> set[int]:
    """The N of every 198.18.N.0/24 that an interface on this host has an address in."""
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            for net in _covered_24s(iface.network):
                used.add(net)
    return used


def _covered_24s(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[int]:
    """Which 198.18.N.0/24 the network overlaps (a wider prefix overlaps many)."""
    ours = ipaddress.ip_network("198.18.0.0/16")
    if net.version != 4 or not net.overlaps(ours):
        return []
    if net.prefixlen >= 24:
        return [int(str(net.network_address).split(".")[2])]
    lo = max(int(net.network_address), int(ours.network_address))
    hi = min(int(net.broadcast_address), int(ours.broadcast_address))
    return sorted({(a >> 8) & 0xFF for a in range(lo, hi + 1, 256)})


def claim_subnet(owner: str, rng: random.Random | None = None) -> Subnet:
    """Claim a free /24 for `owner` (a session id); release it with `release_subnet`."""
    rng = rng or random.Random()
    busy = subnets_in_use()
    candidates = [n for n in range(FIRST_N, LAST_N + 1) if n not in busy]
    rng.shuffle(candidates)  # two runs starting together rarely try the same N first
    directory = claim_dir()
    for n in candidates:
        path = directory / str(n)
        if path.exists() and _claim_is_stale(path, busy):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            me = psutil.Process()
            json.dump({"owner": owner, "pid": me.pid, "create_time": me.create_time()}, f)
        return Subnet(n)
    raise RuntimeError("no free /24 left in 198.18.0.0/16; run `harness cleanup` to remove "
                       f"stale clusters (claims are in {directory})")


def release_subnet(n: int, owner: str) -> None:
    """Drop the claim on 198.18.N.0/24 if `owner` holds it (never someone else's)."""
    path = claim_dir() / str(n)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("owner") == owner:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _claim_is_stale(path: Path, busy: set[int]) -> bool:
    try:
        data = json.loads(path.read_text())
        n = int(path.name)
    except (OSError, ValueError):
        return False  # being written right now, or not ours to judge
    if n in busy:
        return False
    try:
        proc = psutil.Process(int(data["pid"]))
        return abs(proc.create_time() - float(data["create_time"])) > 0.05
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return True
