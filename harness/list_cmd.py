"""`harness list`: the stores, workloads, nemeses, checkers and platforms there are."""

from __future__ import annotations

import click

from checkers.registry import CHECKERS
from harness.stores import STORES
from harness.workloads import WORKLOADS
from nemesis.grudges import PARTITION_KINDS
from nemesis.schedule import FAULT_HELP

PLATFORM_HELP = {
    "local": "processes on loopback 127.R.S.x (a block per run); partitions in the node "
             "transport (dynamo) or iptables (other stores, root); libfaketime",
    "netns": "a network namespace per node on a bridge in 198.18.0.0/15; iptables partitions, "
             "tc netem (root)",
    "docker": "a container per node on a network in 198.18.0.0/15; iptables partitions, "
              "tc netem (`harness image build` first)",
    "ssh": "a process per host of --hosts hosts.toml, reached over SSH; iptables partitions in "
           "a chain of the run's own, libfaketime, kill -9, SIGSTOP (docs/platforms.md)",
}


def _first_line(fn: object) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


@click.command(name="list")
def list_() -> int:
    """List the stores, workloads, nemeses, checkers and platforms."""
    click.echo("stores (--store):")
    for name, store in STORES.items():
        click.echo(f"  {name:<16} {store.description}")
        click.echo(f"  {'':<16} operations: {', '.join(sorted(store.client_class.ops))}; "
                   f"faults: {', '.join(sorted(store.faults))}; "
                   f"platforms: {', '.join(store.platforms)}")
        for option, text in store.options.items():
            click.echo(f"  {'':<16} --store-option {option}: {text}")
    click.echo("workloads:")
    for name, cls in WORKLOADS.items():
        click.echo(f"  {name:<16} {cls.description}")
        click.echo(f"  {'':<16} needs: {', '.join(sorted(cls.needs))}")
    click.echo("nemeses (--nemesis, comma-separated):")
    for name, text in FAULT_HELP.items():
        click.echo(f"  {name:<16} {text}")
    click.echo(f"  partition kinds: {', '.join(PARTITION_KINDS)}")
    click.echo("checkers:")
    for name, fn in CHECKERS.items():
        click.echo(f"  {name:<16} {_first_line(fn)}".rstrip())
    click.echo("platforms (--platform):")
    for name, text in PLATFORM_HELP.items():
        click.echo(f"  {name:<16} {text}")
    return 0
