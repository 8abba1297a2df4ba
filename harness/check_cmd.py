"""`harness check`: re-run the checkers on a run directory or a bare history file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from checkers.linearizability import FAILED_CAS, NIL_READS, Budget
from checkers.models import MODELS
from checkers.registry import ALIASES, CHECKERS, DEFAULTS
from harness.checking import CheckError, check_path, exit_code

_COLORS = {"valid": "green", "invalid": "red", "unknown": "yellow", "n/a": "bright_black"}


def _json_value(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON ({e.msg}): {value!r}; a string needs its "
                                 "quotes, e.g. '\"\"'") from None


def _semantics_line(results: dict[str, Any]) -> str | None:
    sem = results.get("semantics")
    if not sem:
        return None
    initial = "absent" if sem["initial"] is None else json.dumps(sem["initial"])
    return (f"linearizable semantics: initial value {initial}; reads of nil "
            f"{sem['nil_reads']} ({sem['nil_reads_from']}); failed cas {sem['failed_cas']}")


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
suggest (cas -> cas-register, get/put/append -> kv).

Histories from Jepsen, Knossos or Porcupine: --initial, --nil-reads, --failed-cas and
--independent choose their semantics (docs/history.md); the output says which were used.""")
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
@click.option("--all-keys", is_flag=True,
              help="Check every key even after one is found not linearizable (by default the "
                   "check stops at the first invalid key found, as Porcupine does; keys are "
                   "searched in interleaved rounds, smallest first).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes to check keys in, once a check has run 0.25 s in one. Default: "
                   "the machine's cores. The answer is the same for any N.")
@click.option("--initial", metavar="JSON", callback=_json_value, default=None,
              help="The value every key starts with, as JSON (e.g. 0 for Knossos's "
                   "(cas-register 0), '\"\"' for Porcupine's kv). Default: absent.")
@click.option("--nil-reads", type=click.Choice(NIL_READS), default=None,
              help="A completed read of nil: 'unknown' matches any state (Knossos), 'absent' "
                   "means the key is empty. Default: unknown for EDN input, absent for JSONL.")
@click.option("--failed-cas", type=click.Choice(FAILED_CAS), default="ignore", show_default=True,
              help="A failed cas: 'ignore' drops it (Knossos); 'observe' takes it as having seen "
                   "a value other than the expected one during the call (Porcupine's etcd).")
@click.option("--independent/--no-independent", default=None,
              help="Split a jepsen.independent history (:value [k v]) into keys. Default: "
                   "auto-detected for EDN input whose every client op's value is such a pair "
                   "(not for the kv and set models, whose values are lists).")
def check(path: Path, model: str | None, checker_names: tuple[str, ...], as_json: bool,
          junit: Path | None, time_limit: float, memory_limit: int, all_keys: bool,
          jobs: int | None, initial: Any,
          nil_reads: str | None, failed_cas: str, independent: bool | None) -> int:
    for name in checker_names:
        if ALIASES.get(name, name) not in CHECKERS:
            raise click.BadParameter(
                f"unknown checker {name!r}; choose from {', '.join(CHECKERS)}",
                param_hint="--checker")
    budget = Budget(seconds=time_limit, memory_bytes=memory_limit * 2**20,
                    jobs=jobs or os.cpu_count() or 1, all_keys=all_keys)
    try:
        results = check_path(path, list(checker_names) or None, model, budget, initial=initial,
                             nil_reads=nil_reads, failed_cas=failed_cas,
                             independent=independent)
    except CheckError as e:
        raise click.ClickException(str(e)) from None
    except RecursionError:
        raise click.ClickException(f"{path}: a value is nested too deeply to check") from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    for warning in results.get("history", {}).get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    junit_error = None
    if junit is not None:
        from harness.junit import JunitError, write_junit

        try:
            write_junit(results, junit)
        except JunitError as e:
            junit_error = str(e)  # said after the verdict, which must not be lost
    if as_json:
        click.echo(json.dumps(results, indent=2, default=repr))
    else:
        split = results.get("independent")
        if split:
            keys = f" into {split['keys']} keys" if split.get("split") else ""
            click.echo(f"independent: {'split' if split['split'] else 'not split'}{keys} "
                       f"({split['how']})")
        line = _semantics_line(results)
        if line:
            click.echo(line)
        for name, r in results["checkers"].items():
            tag = click.style(f"{r['verdict'].upper():8}", fg=_COLORS.get(r["verdict"]), bold=True)
            click.echo(f"{tag} {name}: {r['summary']}")
        overall = results["verdict"]
        click.echo(click.style(f"verdict: {overall}", fg=_COLORS.get(overall), bold=True))
    if junit_error:
        click.echo(f"error: {junit_error} (exit 3)", err=True)
        return 3
    return exit_code(results)
