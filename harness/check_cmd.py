"""`harness check`: re-run the checkers on a run directory or a bare history file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from checkers.linearizability import Budget
from checkers.models import MODELS
from checkers.registry import ALIASES, CHECKERS, DEFAULTS
from harness.checking import CheckError, check_path, exit_code

_COLORS = {"valid": "green", "invalid": "red", "unknown": "yellow", "n/a": "bright_black"}


def _checker_help() -> str:
    defaults = "; ".join(f"{w}: {', '.join(names)}" for w, names in DEFAULTS.items())
    return (f"A checker to run (repeatable): {', '.join(CHECKERS)}. "
            f"Default (without --checker and --model) per workload: {defaults}.")


@click.command(help=f"""Check PATH: a run directory (its results.json is rewritten; with
--checker or --model, only those checkers' entries are replaced) or a bare history file:
history.jsonl, or a Jepsen EDN history (.edn; a vector of maps or one map per line, keys :process
:type :f :value, optionally :key :time).

Which checkers run: those named with --checker; --model M checks linearizability with model M
(alone: linearizable only; with --checker: linearizable in addition); with neither, the
workload's defaults (listed under --checker).

Each checker answers valid, invalid, unknown (it could not decide) or n/a (not applicable: its
input is absent, e.g. no replicas.json for convergence, no read after a write for
read-your-writes). The verdict is invalid if any checker is invalid, else unknown if any is
unknown, else valid; n/a checkers are left out (all n/a: unknown).

Exit codes: 0 valid, 1 invalid, 2 unknown, 3 unreadable input or a usage error.

Models: {', '.join(MODELS)}. For --checker linearizable without --model: siblings-register for
the register workload, set for cart and set, and for a bare history the one its operations
suggest (cas -> cas-register, get/put/append -> kv).""")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--model", type=click.Choice(list(MODELS)), default=None,
              help="Check linearizability with this model (adds the linearizable checker).")
@click.option("--checker", "checker_names", multiple=True, metavar="NAME", help=_checker_help())
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the results as JUnit XML here.")
@click.option("--time-limit", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="Seconds the linearizability search may take before answering unknown.")
@click.option("--memory-limit", type=click.IntRange(min=1), default=512, show_default=True,
              help="MiB of search cache per key before the linearizability checker answers "
                   "unknown.")
def check(path: Path, model: str | None, checker_names: tuple[str, ...], as_json: bool,
          junit: Path | None, time_limit: float, memory_limit: int) -> int:
    for name in checker_names:
        if ALIASES.get(name, name) not in CHECKERS:
            raise click.BadParameter(
                f"unknown checker {name!r}; choose from {', '.join(CHECKERS)}",
                param_hint="--checker")
    budget = Budget(seconds=time_limit, memory_bytes=memory_limit * 2**20)
    try:
        results = check_path(path, list(checker_names) or None, model, budget)
    except CheckError as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if junit is not None:
        from harness.junit import write_junit

        write_junit(results, junit)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=repr))
    else:
        for name, r in results["checkers"].items():
            tag = click.style(f"{r['verdict'].upper():8}", fg=_COLORS.get(r["verdict"]), bold=True)
            click.echo(f"{tag} {name}: {r['summary']}")
        overall = results["verdict"]
        click.echo(click.style(f"verdict: {overall}", fg=_COLORS.get(overall), bold=True))
    return exit_code(results)
