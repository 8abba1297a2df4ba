"""`harness list`: the stores, workloads, nemeses, checkers and platforms there are."""

from __future__ import annotations

import click

from harness.stores import STORES
from harness.workloads import WORKLOADS
from nemesis.grudges import PARTITION_KINDS
from nemesis.schedule import FAULT_HELP

PLATFORM_HELP = {
    "local": "processes on 127.0.0.x; partitions simulated in the node transport; libfaketime",
    "netns": "one network namespace per node on a bridge; iptables partitions (root)",
    "docker": "one container per node (harness image build); iptables partitions",
}


def checker_names() -> list[tuple[str, str]]:
    """The checkers `harness.checking` offers, however it lists them."""
    try:
        import harness.checking as checking
    except ImportError:
        return []
    registry = getattr(checking, "CHECKERS", None) or getattr(checking, "CHECKER_NAMES", None)
    if isinstance(registry, dict):
        return [(name, _doc(fn)) for name, fn in registry.items()]
    if isinstance(registry, list | tuple):
        return [(str(name), "") for name in registry]
    return []


def _doc(obj: object) -> str:
    if isinstance(obj, str):
        return obj
    doc = (getattr(obj, "__doc__", None) or "").strip()
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
    checkers = checker_names()
    if not checkers:
        click.echo("  (harness.checking is not installed in this checkout)")
    for name, text in checkers:
        click.echo(f"  {name:<16} {text}".rstrip())
    click.echo("platforms (--platform):")
    for name, text in PLATFORM_HELP.items():
        click.echo(f"  {name:<16} {text}")
    return 0
