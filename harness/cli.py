"""`harness`: the command-line entry point.

Each subcommand lives in its own module and is imported only when used, so `harness --help` stays
quick and one broken command cannot take the others down.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_HARNESS = 0, 1, 2, 3

# command name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "run": "harness.run_cmd:run",
    "check": "harness.check_cmd:check",
    "list": "harness.list_cmd:list_",
    "cluster": "harness.cluster_cmd:cluster",
    "cleanup": "harness.cleanup_cmd:cleanup",
    "report": "harness.report_cmd:report",
    "serve": "harness.report_cmd:serve",
    "image": "harness.image_cmd:image",
    "suite": "harness.suite_cmd:suite",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    except Exception as e:  # noqa: BLE001 - exit 1 would read as "invalid"
        if os.environ.get("HARNESS_DEBUG"):
            traceback.print_exc()
        msg = str(e).splitlines()[0][:500] if str(e) else ""
        click.echo(f"harness: internal error: {type(e).__name__}: {msg} (exit 3; "
                   "HARNESS_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_HARNESS)
    sys.exit(rv if isinstance(rv, int) else 0)
