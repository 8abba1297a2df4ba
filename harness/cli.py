"""`harness`: the command-line entry point. Each subcommand lives in its own module."""

from __future__ import annotations

import sys

import click

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_HARNESS = 0, 1, 2, 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynamo-jepsen")
def cli() -> None:
    """Jepsen-style fault injection against a Dynamo store.

    Start with `harness run --nemesis partition --workload cart`.
    Exit codes: 0 valid, 1 invalid, 2 unknown, 3 the harness failed (or a usage error).
    """


def main() -> None:
    """Run the CLI; usage errors exit 3, as any harness failure does."""
    try:
        rv = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_HARNESS)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_HARNESS)
    sys.exit(rv if isinstance(rv, int) else 0)
