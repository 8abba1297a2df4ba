"""Shell scripts that put a node's partition and packet faults in place inside its own host.

Each script runs inside one node's network namespace or container (`sh -c SCRIPT`), so one
process does a whole change. Partition rules live only in the harness's own chain `DJ-PART`,
jumped to from INPUT: applying replaces that chain's rules, healing flushes and deletes it and
removes the jump, and nothing else in the tables is touched. Packet faults are a `netem` root
qdisc on the node's interface. These are pure functions of what is wanted.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable

CHAIN = "DJ-PART"
IPT = "iptables -w 5"  # wait for the xtables lock rather than fail when rules change at once


def _check_address(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {address!r}") from None


def partition_script(drop_from: Iterable[str]) -> str:
    """Drop every packet from these addresses (and only them); an empty list heals."""
    sources = sorted({_check_address(a) for a in drop_from})
    if not sources:
        return heal_script()
    lines = [
        "set -e",
        f"{IPT} -N {CHAIN} 2>/dev/null || true",
        f"{IPT} -F {CHAIN}",
        *(f"{IPT} -A {CHAIN} -s {src} -j DROP" for src in sources),
        # first in INPUT, so that nothing accepts the packets before our chain sees them
        f"{IPT} -C INPUT -j {CHAIN} 2>/dev/null || {IPT} -I INPUT 1 -j {CHAIN}",
    ]
    return "\n".join(lines) + "\n"


def heal_script() -> str:
    """Remove the harness's chain and its jump; a no-op when they are not there."""
    return "\n".join([
        f"if {IPT} -n -L {CHAIN} >/dev/null 2>&1; then",
        f"  while {IPT} -D INPUT -j {CHAIN} 2>/dev/null; do :; done",
        f"  {IPT} -F {CHAIN}",
        f"  {IPT} -X {CHAIN}",
        "fi",
    ]) + "\n"


def list_script() -> str:
    """Print the rules of the harness's chain (nothing when it is absent)."""
    return f"{IPT} -S {CHAIN} 2>/dev/null || true\n"


def netem_script(device: str, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                 loss_percent: float = 0.0) -> str:
    """Delay and/or lose packets leaving `device`; all zero heals."""
    if delay_ms < 0 or jitter_ms < 0 or not 0 <= loss_percent <= 100:
        raise ValueError("delay and jitter must not be negative and loss must be 0..100 % "
                         f"(got delay {delay_ms}, jitter {jitter_ms}, loss {loss_percent})")
    if delay_ms == 0 and loss_percent == 0:
        return netem_heal_script(device)
    dev = shlex.quote(device)
    parts = ["netem"]
    if delay_ms:
        parts += ["delay", f"{delay_ms:g}ms"] + ([f"{jitter_ms:g}ms"] if jitter_ms else [])
    if loss_percent:
        parts += ["loss", f"{loss_percent:g}%"]
    return f"set -e\ntc qdisc replace dev {dev} root {' '.join(parts)}\n"


def netem_heal_script(device: str) -> str:
    dev = shlex.quote(device)
    # deleting the root qdisc when only the default is there fails; that is already healed
    return f"if tc qdisc show dev {dev} | grep -q netem; then tc qdisc del dev {dev} root; fi\n"
