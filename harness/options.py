"""Flags shared by `harness run` and `harness cluster up`, and their validation."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness.platforms.base import PlatformError
from harness.settings import FSYNC_POLICIES, ClusterSettings, TestSettings
from harness.stores import DEFAULT_STORE, store_class
from nemesis.schedule import parse_faults


def cluster_options(fn: Callable) -> Callable:
    """--nodes, --n/--r/--w, --q, --sloppy/--strict, --request-timeout-ms, --fsync; their
    defaults are ClusterSettings' (one place)."""
    d = ClusterSettings
    options = [
        click.option("--nodes", type=int, default=d.nodes, help="node processes"),
        click.option("--n", "n", type=int, default=d.n, help="replicas per key (N)"),
        click.option("--r", "r", type=int, default=d.r, help="read quorum (R)"),
        click.option("--w", "w", type=int, default=d.w, help="write quorum (W)"),
        click.option("--q", "q", type=int, default=d.q, help="ring partitions (a power of two)"),
        click.option("--sloppy/--strict", default=d.sloppy,
                     help="sloppy quorum with hinted handoff, or primaries only"),
        click.option("--request-timeout-ms", type=int, default=d.request_timeout_ms,
                     help="the nodes' per-request timeout"),
        click.option("--fsync", type=click.Choice(FSYNC_POLICIES), default=d.fsync,
                     help="the nodes' fsync policy"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def ssh_options(fn: Callable) -> Callable:
    """--hosts, --known-hosts, --insecure-accept-host-keys: the ssh platform's machines and how
    their host keys are checked (harness/platforms/ssh.py)."""
    options = [
        click.option("--hosts", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     envvar="HARNESS_SSH_HOSTS",
                     help="--platform ssh: the hosts file (TOML: address, port, user, key or "
                          "agent, sudo, dir per host; docs/platforms.md) [env HARNESS_SSH_HOSTS]"),
        click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, envvar="HARNESS_SSH_KNOWN_HOSTS",
                     help="--platform ssh: check host keys against this known_hosts file "
                          "[default: the hosts file's known_hosts, else ~/.ssh/known_hosts]"),
        click.option("--insecure-accept-host-keys", is_flag=True,
                     help="--platform ssh: accept whatever host keys the hosts present (their "
                          "fingerprints are recorded in test.json and the report)"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def check_ssh(kw: dict[str, Any], platform: str, faults: list[str]) -> None:
    """Validate the ssh flags (a UsageError naming the problem); on the ssh platform, --nodes
    left at its default becomes the number of hosts."""
    hosts = kw.get("hosts")
    if platform != "ssh":
        if hosts or kw.get("known_hosts") or kw.get("insecure_accept_host_keys"):
            # the environment variable alone is not a mistake: it may be set for a suite
            ctx = click.get_current_context(silent=True)
            given = [f for f in ("hosts", "known_hosts", "insecure_accept_host_keys")
                     if kw.get(f) and (ctx is None or ctx.get_parameter_source(f)
                                       == click.core.ParameterSource.COMMANDLINE)]
            if given:
                raise click.UsageError(
                    f"--{given[0].replace('_', '-')} is for --platform ssh")
        kw.pop("hosts", None)
        kw.pop("known_hosts", None)
        kw.pop("insecure_accept_host_keys", None)
        return
    from harness.platforms.ssh import make_trust
    from harness.platforms.ssh_hosts import HostsFileError, load_hosts

    if not hosts:
        raise click.UsageError("--platform ssh needs --hosts hosts.toml (the machines to use; "
                               "docs/platforms.md shows one)")
    if kw.get("known_hosts") and kw.get("insecure_accept_host_keys"):
        raise click.UsageError("give --known-hosts or --insecure-accept-host-keys, not both")
    try:
        parsed = load_hosts(hosts)
        make_trust(parsed, kw.get("known_hosts"), bool(kw.get("insecure_accept_host_keys")))
    except (HostsFileError, PlatformError) as e:
        raise click.UsageError(str(e)) from None
    for fault in ("packet", "power", "wipe"):
        if fault in faults:  # wipe: the data is on the remote hosts, not under the run dir
            raise click.UsageError(f"--nemesis {fault} is not available on the ssh platform "
                                   "(use --platform netns or docker)")
    if kw.get("leave_running"):  # `harness cluster` drives local processes only
        raise click.UsageError("--leave-running is not available on the ssh platform")
    ctx = click.get_current_context(silent=True)
    if (ctx is not None and "nodes" in ctx.params
            and ctx.get_parameter_source("nodes") != click.core.ParameterSource.COMMANDLINE):
        kw["nodes"] = len(parsed.hosts)  # one node per host unless --nodes says fewer
    if int(kw.get("nodes", ClusterSettings.nodes)) > len(parsed.hosts):
        raise click.UsageError(f"--nodes {kw.get('nodes')}: {parsed.path} lists only "
                               f"{len(parsed.hosts)} hosts (one node per host)")


def cluster_from_options(nodes: int, n: int, r: int, w: int, q: int, sloppy: bool,
                         request_timeout_ms: int, fsync: str) -> ClusterSettings:
    cluster = ClusterSettings(nodes=nodes, n=n, r=r, w=w, q=q, sloppy=sloppy,
                              request_timeout_ms=request_timeout_ms, fsync=fsync)
    errors = cluster.errors()
    if errors:
        raise click.UsageError("; ".join(errors))
    return cluster


FLOAT_FLAGS = ("time_limit", "rate", "nemesis_interval", "nemesis_jitter", "quiesce_timeout")


def writable_dir_error(path: Path) -> str | None:
    """Why run directories cannot be made under `path` (said before anything starts), or None.
    Makes `path` if it is missing, as the run would."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {path}: {e.strerror or e}"
    if not path.is_dir():
        return f"{path} is not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None


def offered_faults(store: str) -> frozenset[str] | None:
    """The faults a store can be tested under (None: an unknown store, refused later)."""
    try:
        return store_class(store).faults
    except ValueError:
        return None


def settings_from_options(*, workload: str, nemesis_spec: str, platform: str, out: Path,
                          **kw: Any) -> TestSettings:
    """Settings from the flags, or a click.UsageError naming every bad flag."""
    bad = [f"--{k.replace('_', '-')} must be a finite number (got {kw[k]})" for k in FLOAT_FLAGS
           if isinstance(kw.get(k), float) and not math.isfinite(kw[k])]
    if bad:  # nan passes every comparison, and test.json would hold a bare NaN (not JSON)
        raise click.UsageError("; ".join(bad))
    try:
        faults = parse_faults(nemesis_spec, offered_faults(kw.get("store", DEFAULT_STORE)))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--nemesis") from None
    check_ssh(kw, platform, faults)
    cluster_keys = ("nodes", "n", "r", "w", "q", "sloppy", "request_timeout_ms", "fsync", "bugs",
                    "node_settings")
    cluster = ClusterSettings(**{k: kw.pop(k) for k in cluster_keys if k in kw})
    settings = TestSettings(workload=workload, nemesis=faults, platform=platform,
                            cluster=cluster, out=out, **kw)
    errors = settings.errors()
    if errors:
        raise click.UsageError("; ".join(errors))
    if "packet" in faults and platform == "local":
        raise click.UsageError(
            "--nemesis packet needs a real network (tc netem): use --platform netns or docker")
    if "power" in faults:
        if platform not in ("local", "netns", "docker", "sim"):
            raise click.UsageError(f"--nemesis power needs faultfs mounts, which the {platform} "
                                   "platform does not make")
        from harness.faultfs.mount import unavailable

        why = None if platform == "sim" else unavailable()  # sim: a simulated disk
        if why:
            raise click.UsageError(f"--nemesis power needs faultfs (FUSE): {why}")
    if platform == "netns":
        from harness.platforms.netns import require_netns_tools

        try:
            require_netns_tools()
        except PlatformError as e:
            raise click.UsageError(str(e)) from None
    # on the docker platform libfaketime comes with the image, not from this host
    if "clock" in faults and platform not in ("docker", "sim", "ssh"):  # ssh: the hosts have it
        from harness.platforms.local import find_libfaketime

        try:
            find_libfaketime()
        except PlatformError as e:
            raise click.UsageError(str(e)) from None
    why = writable_dir_error(out)  # last: a usage error above must leave no folder behind
    if why:
        raise click.BadParameter(why, param_hint="--out")
    return settings
