"""`harness cluster`: a long-lived local cluster to poke at by hand (curl, hinted handoff...)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from harness.options import cluster_from_options, cluster_options
from harness.platforms.base import PlatformError
from harness.platforms.local import LocalPlatform, find_libfaketime
from harness.state import Session, sessions, state_dir
from harness.stores import DEFAULT_STORE, STORES, make_store, store_errors

NAME_OPTION = click.option("--name", default="default", show_default=True,
                           help="which cluster (several may run at once)")


def session_id(name: str) -> str:
    return f"cluster-{name}"


def find_session(name: str) -> Session:
    """The cluster called `name` (or a run left running, by its session id)."""
    for session in sessions():
        if session.kind == "cluster" and session.id in (session_id(name), name):
            return session
    known = [s.id.removeprefix("cluster-") for s in sessions() if s.kind == "cluster"]
    hint = f"; running clusters: {', '.join(known)}" if known else "; start one with `cluster up`"
    raise click.UsageError(f"no cluster named {name!r}{hint}")


def attach(name: str) -> LocalPlatform:
    session = find_session(name)
    root = Path(session.extra.get("root", session.dir))
    try:
        return LocalPlatform.attach(root, session)
    except (OSError, ValueError, KeyError) as e:
        raise click.ClickException(f"cluster {name!r} has an unreadable record ({e}); "
                                   "`harness cleanup` removes it") from None


@click.group()
def cluster() -> None:
    """Start a local cluster and leave it running, to watch it by hand.

    \b
    harness cluster up --nodes 5     prints "n1 http://127.R.S.2:PORT", one node a line
    curl -X PUT -d '{"value": 1, "context": null}' http://127.R.S.2:PORT/kv/k
    harness cluster stop n2          kill -9 one node; write; then
    harness cluster start n2         and watch hinted handoff / anti-entropy repair it
    harness cluster down             stop everything

    Other stores too: harness cluster up --store etcd --nodes 3 (or --store redis; as root,
    so their members get the group ids that the partition rules of `harness run` match).
    """


@cluster.command()
@NAME_OPTION
@cluster_options
@click.option("--clock", is_flag=True, help="start the nodes under libfaketime (clock skew)")
@click.option("--store", type=click.Choice(list(STORES)), default=DEFAULT_STORE,
              help="the system to run (`harness list`)")
@click.option("--store-option", "store_options", multiple=True, metavar="NAME",
              help="a store option (repeatable), as for `harness run`")
def up(name: str, clock: bool, store: str, store_options: tuple[str, ...],
       **options: object) -> int:
    """Start a cluster, print each node's id and client URL, and leave it running."""
    settings = cluster_from_options(**options)  # type: ignore[arg-type]
    errors = store_errors(store, "", ["clock"] if clock else [], "local", store_options,
                          settings)
    if errors:
        raise click.UsageError("; ".join(errors))
    for session in sessions():
        if session.kind == "cluster" and session.id == session_id(name):
            if any(attach(name).is_running(n) for n in session.nodes):
                raise click.UsageError(f"cluster {name!r} is already up; "
                                       f"`harness cluster down --name {name}` first")
            session.remove()
    if clock:
        try:
            find_libfaketime()
        except PlatformError as e:
            raise click.UsageError(str(e)) from None
    root = state_dir() / "clusters" / name
    shutil.rmtree(root, ignore_errors=True)  # a fresh cluster starts from empty disks
    session = Session(kind="cluster", dir=str(root), id=session_id(name))
    session.save()
    platform = LocalPlatform(root, settings, session, clock=clock,
                             store=make_store(store, settings, store_options)
                             if store != DEFAULT_STORE else None)
    try:
        platform.start()
    except PlatformError as e:
        platform.stop()
        session.remove()
        raise click.ClickException(str(e)) from None
    for node in platform.node_ids():
        click.echo(f"{node} {platform.client_url(node)}")
    return 0


@cluster.command()
@NAME_OPTION
def status(name: str) -> int:
    """Each node: id, client URL, pid, and whether it is up, paused or down."""
    platform = attach(name)
    pids = platform.pids()
    click.echo(f"cluster {name}: {platform.root}  admin token {platform.token}")
    for node in platform.node_ids():
        if node not in pids:
            state = "down"
        elif platform.is_paused(node):
            state = "paused"
        else:
            info = platform.status(node)
            if info is None:
                ready = platform.store.is_ready(platform.spec(node))
                state = "up (ready)" if ready else "not answering"
            else:
                peers = info.get("peers", {})
                up_peers = sorted(p for p, v in peers.items() if v.get("up"))
                state = f"up (sees {', '.join(up_peers) or 'no peers'} up)"
        pid = pids.get(node, "-")
        click.echo(f"{node} {platform.client_url(node)} pid {pid} {state}")
    return 0


@cluster.command()
@NAME_OPTION
@click.argument("node")
def stop(name: str, node: str) -> int:
    """Kill -9 one NODE (its data stays on disk)."""
    platform = attach(name)
    _check_node(platform, node)
    platform.kill(node)
    click.echo(f"{node} killed")
    return 0


@cluster.command()
@NAME_OPTION
@click.argument("node")
def start(name: str, node: str) -> int:
    """Start one stopped NODE again, on the same address, port and data."""
    platform = attach(name)
    _check_node(platform, node)
    if platform.is_running(node):
        click.echo(f"{node} is already running")
        return 0
    try:
        platform.restart(node)
    except PlatformError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{node} {platform.client_url(node)}")
    return 0


@cluster.command()
@NAME_OPTION
def down(name: str) -> int:
    """Stop every node of the cluster; logs and data stay in its folder."""
    platform = attach(name)
    platform.stop()
    platform.session.remove()
    click.echo(f"cluster {name} stopped; logs in {platform.root}")
    return 0


def _check_node(platform: LocalPlatform, node: str) -> None:
    if node not in platform.node_ids():
        raise click.BadParameter(f"no node {node!r}; the nodes are "
                                 f"{', '.join(platform.node_ids())}", param_hint="NODE")
