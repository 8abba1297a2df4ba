"""`harness cleanup`: stop whatever a crashed run (or a forgotten cluster) left behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from harness.options import ssh_options
from harness.platforms.leftovers import describe_leftovers, remove_leftovers
from harness.rundir import write_json
from harness.state import Session, kill_recorded, owner_alive, sessions, state_dir


def mark_killed(session: Session) -> bool:
    """A run whose harness died (SIGKILL, power loss) left test.json saying `running`; say
    `killed` instead, so that the index and a later reader do not take it for a live run.
    True when test.json was changed."""
    path = Path(session.dir) / "test.json"
    try:
        test = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(test, dict) or test.get("status") != "running":
        return False
    test["status"] = "killed"
    test["killed_note"] = ("the harness process died before the run ended; `harness cleanup` "
                           f"stopped what it left at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
    try:
        write_json(path, test)
    except OSError:
        return False
    return True


def cleanup_sessions(force: bool = False, keep_clusters: bool = False,
                     dry_run: bool = False) -> list[str]:
    """Stop every recorded node whose pid, start time and command line still match; returns what
    was done, one line each. Runs whose harness is still alive are left alone unless `force`."""
    lines = []
    for session in sessions():
        if session.kind == "run" and owner_alive(session) and not force:
            lines.append(f"{session.id}: run still in progress (pid {session.owner.get('pid')}); "
                         "left alone")
            continue
        if session.kind == "cluster" and keep_clusters:
            lines.append(f"{session.id}: cluster kept")
            continue
        stopped = [node for node, ident in sorted(session.nodes.items())
                   if not dry_run and kill_recorded(ident)]
        if dry_run:
            nodes = ", ".join(sorted(session.nodes)) or "nothing"
            lines.append(f"{session.id}: would stop {nodes}")
            lines += [f"{session.id}: would remove {what}"
                      for what in describe_leftovers(session.extra)]
            continue
        marked = session.kind == "run" and mark_killed(session)
        # netns/docker: namespaces, bridges, containers, networks (after their processes died)
        removed, complete = remove_leftovers(session.extra, session.id)
        if complete:
            session.remove()
        lines.append(f"{session.id} ({session.kind}, {session.dir}): stopped "
                     f"{', '.join(stopped) or 'nothing (already gone)'}")
        lines += [f"{session.id}: removed {what}" for what in removed]
        if marked:
            lines.append(f"{session.id}: marked {Path(session.dir) / 'test.json'} killed")
    return lines


@click.command()
@click.option("--force", is_flag=True, help="also stop runs whose harness is still running")
@click.option("--keep-clusters", is_flag=True,
              help="spare clusters started by `harness cluster up` or `run --leave-running`")
@click.option("--dry-run", is_flag=True, help="only say what would be stopped")
@ssh_options
def cleanup(force: bool, keep_clusters: bool, dry_run: bool, hosts: Path | None = None,
            known_hosts: Path | None = None, insecure_accept_host_keys: bool = False) -> int:
    """Stop every node process that a crashed or interrupted run left behind.

    On the netns and docker platforms it also removes the run's namespaces, bridge, veth pairs,
    FORWARD rule, containers and Docker network, exactly as recorded.

    Only processes recorded in the state directory ($HARNESS_STATE_DIR, default
    ~/.cache/dynamo-harness) are touched, and only while their pid, start time and command line
    still match the record: nothing is ever killed by name. Paused nodes are resumed first, and
    the faults die with the processes. Running it twice is harmless.

    With --hosts hosts.toml (the ssh platform) it also reaches every host of that file and
    removes the run folders ended runs left under each host's `dir`: their processes (by the
    recorded pid and start time), their iptables chain and their files. Runs still going on
    this machine, and runs started from another machine, are left alone unless --force.
    """
    lines = cleanup_sessions(force=force, keep_clusters=keep_clusters, dry_run=dry_run)
    # -- the ssh platform: what runs left on the machines of a hosts file (issue 16) --
    if hosts is not None:
        lines += cleanup_ssh_hosts(hosts, known_hosts, insecure_accept_host_keys, force, dry_run)
    if not lines:
        click.echo(f"nothing to clean up (state directory {state_dir()})")
    for line in lines:
        click.echo(line)
    return 0


def cleanup_ssh_hosts(hosts: Path, known_hosts: Path | None, accept: bool, force: bool,
                      dry_run: bool) -> list[str]:
    """`--hosts`: the ssh platform's leftovers on every host of the file."""
    from harness.platforms.base import PlatformError
    from harness.platforms.ssh import cleanup_hosts, make_trust
    from harness.platforms.ssh_hosts import HostsFileError, load_hosts

    try:
        parsed = load_hosts(hosts)
        trust = make_trust(parsed, str(known_hosts) if known_hosts else None, accept)
    except (HostsFileError, PlatformError) as e:
        raise click.UsageError(str(e)) from None
    return cleanup_hosts(parsed, trust, force=force, dry_run=dry_run)
