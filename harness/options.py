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
    if "clock" in faults and platform not in ("docker", "sim"):
        from harness.platforms.local import find_libfaketime

        try:
            find_libfaketime()
        except PlatformError as e:
            raise click.UsageError(str(e)) from None
    why = writable_dir_error(out)  # last: a usage error above must leave no folder behind
    if why:
        raise click.BadParameter(why, param_hint="--out")
    return settings
