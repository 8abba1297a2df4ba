"""What `harness cleanup` removes besides processes: the real platforms' namespaces, bridges, veth
pairs, host FORWARD rule, containers, networks and subnet claims, and the local platform's
iptables chains for partitions of outside stores and faultfs mounts for the power nemesis, as
named in a session record.

Each platform writes what it is about to make into the session's `extra` before making it, so this
removes exactly that, and running it twice is harmless.
"""

from __future__ import annotations

from typing import Any


def describe_leftovers(extra: dict[str, Any]) -> list[str]:
    """What `remove_leftovers` would try to remove (for `harness cleanup --dry-run`)."""
    out = []
    if "netns" in extra:
        rec = extra["netns"]
        out += [f"namespace {ns}" for ns in rec.get("namespaces", {}).values()]
        out.append(f"bridge {rec.get('bridge')}")
    if "docker" in extra:
        rec = extra["docker"]
        out += [f"container {name}" for name in rec.get("containers", {}).values()]
        out.append(f"network {rec.get('network')}")
    if "loopback" in extra:
        from harness.platforms.iptables import loopback_chains

        out += [f"iptables chain {c}" for c in loopback_chains(str(extra["loopback"]["tag"]))]
    if "faultfs" in extra:
        from harness.platforms.faultdisks import describe_recorded

        out += describe_recorded(extra["faultfs"])
    if "ssh" in extra:
        from harness.platforms.ssh import describe_recorded as describe_ssh

        out += describe_ssh(extra["ssh"])
    return out


def remove_leftovers(extra: dict[str, Any], owner: str) -> tuple[list[str], bool]:
    """Remove the platform resources recorded in a session's `extra`. Returns what was removed
    (one line each; for a platform that could not be reached, why) and whether all is gone, so
    that a record is kept while something it names may still exist."""
    done: list[str] = []
    complete = True
    if "netns" in extra:
        from harness.platforms.netns import remove_recorded as remove_netns

        done += remove_netns(extra["netns"], owner)
    if "docker" in extra:
        from harness.platforms.base import PlatformError
        from harness.platforms.docker import remove_recorded as remove_docker

        try:
            done += remove_docker(extra["docker"], owner)
        except PlatformError as e:
            done.append(f"containers not removed: {e}")
            complete = False
    if "loopback" in extra:
        from harness.platforms.iptables import loopback_chains
        from harness.platforms.local import remove_loopback

        err = remove_loopback(extra["loopback"])
        chains = " and ".join(loopback_chains(str(extra["loopback"]["tag"])))
        if err:
            done.append(f"iptables chains {chains} not removed: {err}")
            complete = False
        else:
            done.append(f"iptables chains {chains}")
    if "faultfs" in extra:
        from harness.platforms.faultdisks import remove_recorded as remove_faultfs

        removed, all_gone = remove_faultfs(extra["faultfs"])
        done += removed
        complete = complete and all_gone
    if "ssh" in extra:  # the hosts the run touched, reached again over SSH
        from harness.platforms.ssh import remove_recorded as remove_ssh

        removed, all_gone = remove_ssh(extra["ssh"], owner)
        done += removed
        complete = complete and all_gone
    return done, complete
