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


# -- the local platform: partitions between loopback addresses on the host ----------------------
#
# Processes on one host reach each other's 127.0.0.x from 127.0.0.1 (the kernel's source for the
# loopback route), and other runs on this host use the same addresses, so no rule by address
# alone can pick one run's members. Each member therefore runs with a group id of its own: the
# nat chain DJS-<tag> (from POSTROUTING, for lo) rewrites the source of every connection a member
# opens to its own address, and the filter chain DJL-<tag> (from OUTPUT, for lo) drops what a
# member's group sends to a member it is cut off from, found by the connection's tracked
# addresses: the peer is its original destination (the member opened it) or its reply
# destination (the peer opened it, from its own rewritten address). Both chains are one run's
# own; the harness's clients (another group) and every other run's processes are never matched.


def loopback_chains(tag: str) -> tuple[str, str]:
    """(filter chain, nat chain) of the run tagged `tag` (iptables allows 28 characters)."""
    if not tag.isalnum() or len(tag) > 20:
        raise ValueError(f"a chain tag is at most 20 letters and digits (got {tag!r})")
    return f"DJL-{tag}", f"DJS-{tag}"


def loopback_setup_script(tag: str, sources: dict[int, str]) -> str:
    """Create the run's chains: SNAT of each group id to its address, an empty filter chain."""
    filt, nat = loopback_chains(tag)
    lines = ["set -e",
             f"{IPT} -t nat -N {nat} 2>/dev/null || {IPT} -t nat -F {nat}",
             *(f"{IPT} -t nat -A {nat} -p tcp -m owner --gid-owner {int(gid)} "
               f"-j SNAT --to-source {_check_address(addr)}"
               for gid, addr in sorted(sources.items())),
             f"{IPT} -t nat -C POSTROUTING -o lo -j {nat} 2>/dev/null || "
             f"{IPT} -t nat -I POSTROUTING 1 -o lo -j {nat}",
             f"{IPT} -N {filt} 2>/dev/null || {IPT} -F {filt}",
             f"{IPT} -C OUTPUT -o lo -j {filt} 2>/dev/null || {IPT} -I OUTPUT 1 -o lo -j {filt}"]
    return "\n".join(lines) + "\n"


def loopback_partition_script(tag: str, drops: Iterable[tuple[int, str]]) -> str:
    """Replace the run's filter rules: drop what each group id sends to each address, on the
    connections it opened to that address (original destination) and on those opened from it
    (reply destination). The packet's own destination will not do: on loopback, an answer on a
    connection whose source was rewritten gets its destination rewritten back to 127.0.0.1
    before the filter sees it, so such answers would pass."""
    filt, _ = loopback_chains(tag)
    pairs = sorted({(int(gid), _check_address(d)) for gid, d in drops})
    lines = ["set -e", f"{IPT} -F {filt}"]
    for gid, d in pairs:
        for match in ("--ctorigdst", "--ctrepldst"):
            lines.append(f"{IPT} -A {filt} -m owner --gid-owner {gid} -m conntrack {match} {d} "
                         "-j DROP")
    return "\n".join(lines) + "\n"


def loopback_teardown_script(tag: str) -> str:
    """Remove the run's chains and their jumps; a no-op when they are not there."""
    filt, nat = loopback_chains(tag)
    return "\n".join([
        f"while {IPT} -D OUTPUT -o lo -j {filt} 2>/dev/null; do :; done",
        f"{IPT} -F {filt} 2>/dev/null || true",
        f"{IPT} -X {filt} 2>/dev/null || true",
        f"while {IPT} -t nat -D POSTROUTING -o lo -j {nat} 2>/dev/null; do :; done",
        f"{IPT} -t nat -F {nat} 2>/dev/null || true",
        f"{IPT} -t nat -X {nat} 2>/dev/null || true",
    ]) + "\n"


def loopback_list_script(tag: str) -> str:
    filt, nat = loopback_chains(tag)
    return f"{IPT} -S {filt} 2>/dev/null || true\n{IPT} -t nat -S {nat} 2>/dev/null || true\n"
