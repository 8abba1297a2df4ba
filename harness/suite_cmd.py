"""`harness suite`: run a suite file's tests and their controls; judge each run's verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_SUITE = 0, 1, 3


@click.command(context_settings={"show_default": True})
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              help="reports folder; each test's runs go to OUT/<test name>/")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write JUnit XML here: one testcase per suite test")
@click.option("--only", multiple=True, metavar="NAME",
              help="run only the tests with this name (repeatable; shell patterns allowed; a "
                   "control is NAME-control, so 'bug-lww*' runs a bug test and its control)")
@click.option("--seed", type=int, default=None,
              help="seed every test with this (overrides the suite's seeds)")
@click.option("--dry-run", is_flag=True, help="validate the suite and print the runs, run nothing")
def suite(suite_file: Path, out: Path, junit: Path | None, only: tuple[str, ...],
          seed: int | None, dry_run: bool) -> int:
    """Run the tests of SUITE_FILE (TOML) and judge each run's verdicts.

    Each test is a `harness run` (a subprocess) with its own workload, nemesis, platform, cluster
    settings, seeded bugs and time limit; `expect` names the verdict each checker must give.
    A test passes when every checker in `expect` matches and, for a test without bugs, no checker
    at all is invalid. Every test with bugs is followed by its control, NAME-control: the same
    settings without the bugs, where every checker must be valid or n/a (a test opts out with
    `control = false` and a `control_reason`, which is printed). Prints a table of expected versus
    actual verdicts and writes OUT/suite.json.

    Exit codes: 0 every expectation met, 1 some test missed its expectation (or its run failed),
    3 the suite file is wrong.
    """
    from harness.suite import (
        SuiteError,
        expand,
        junit_xml,
        load_suite,
        mismatch_message,
        note,
        run_args,
        run_one,
        select,
        summary_json,
    )

    # a CI log is not a terminal: give the table room rather than rich's 80 columns
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    from harness.junit import writable_file_error
    from harness.options import writable_dir_error
    from harness.suite_nodecheck import node_settings_refusals

    try:
        loaded = expand(load_suite(suite_file))
        tests = select(loaded, list(only))
        refusals = node_settings_refusals(tests)  # what the node would refuse at start
        if refusals:
            raise SuiteError("; ".join(refusals))
    except SuiteError as e:
        click.echo(f"error: {e}", err=True)
        return EXIT_BAD_SUITE
    for flag, why in ([] if dry_run else  # a dry run makes nothing
                      [("--out", writable_dir_error(out)),
                       ("--junit", junit and writable_file_error(junit))]):
        if why:
            click.echo(f"error: {flag}: {why}", err=True)
            return EXIT_BAD_SUITE
    if dry_run:
        for t in tests:
            click.echo(f"{t.name}: harness {' '.join(run_args(t, out / t.name, seed))}")
            for line in note(t):
                click.echo(f"    # {line}")
        return EXIT_OK
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for i, t in enumerate(tests, 1):
        bugs = (f" bugs {','.join(t.weakened)}" if t.weakened else f" (control of {t.control_of})"
                if t.is_control else " (correct store)")
        console.print(f"[{i}/{len(tests)}] {t.name}:{bugs} ...", markup=False)
        if t.weakened and not t.control:
            console.print(f"    no control run: {t.control_reason}", markup=False)
        o = run_one(t, out, seed)
        outcomes.append(o)
        mark = "[green]ok[/]" if o.passed else "[red]FAILED[/]"
        reason = o.error or (mismatch_message(o) if o.mismatches else
                             "; ".join(f"{c} {o.actual[c]}" for c in t.expect))
        console.print(f"    {mark} in {o.seconds:.1f} s: {escape(reason)}")
        # written after every test, so an interrupted suite still leaves what it found
        (out / "suite.json").write_text(json.dumps(summary_json(loaded, outcomes), indent=2)
                                        + "\n", encoding="utf-8")
    console.print(table(outcomes))
    failed = [o.test.name for o in outcomes if not o.passed]
    if junit is not None:
        try:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(junit_xml(loaded, outcomes), encoding="utf-8")
        except OSError as e:
            # after the table: the outcomes are already said
            click.echo(f"error: cannot write the JUnit XML to {junit}: {e.strerror or e}",
                       err=True)
            return EXIT_BAD_SUITE
    if failed:
        console.print(f"[red]{len(failed)} of {len(outcomes)} tests missed their expectation:"
                      f"[/] {', '.join(failed)}")
        return EXIT_MISMATCH
    console.print(f"[green]all {len(outcomes)} tests met their expectations[/]")
    return EXIT_OK


def table(outcomes: list) -> Table:
    from checkers.verdict import combine
    from harness.suite import OVERALL

    t = Table(title="expected vs actual verdicts")
    for col in ("test", "bugs", "checker", "expected", "actual", "", "seconds"):
        t.add_column(col, overflow="fold")  # CI logs need whole names, not ellipses
    for o in outcomes:
        test = o.test
        bugs = ",".join(test.weakened) or (f"none (control of {test.control_of})"
                                       if test.is_control else "")
        rows = [(c, " or ".join(expected), o.actual.get(c, "missing"),
                 c not in o.mismatches and o.error is None)
                for c, expected in test.expect.items()]
        # checkers expect does not name, failing the test: invalid on the correct store, or
        # anything but valid or n/a in a control
        rows += [(c, "valid" if c == OVERALL else "valid or n/a" if test.is_control
                  else "not invalid", combine(o.verdicts.values()) if c == OVERALL
                  else o.verdicts.get(c, "missing"), False)
                 for c in o.mismatches if c not in test.expect]
        for i, (checker, expected, actual, ok) in enumerate(rows):
            t.add_row(escape(test.name) if i == 0 else "", escape(bugs) if i == 0 else "",
                      escape(checker), escape(expected), escape(actual),
                      "[green]ok[/]" if ok else "[red]MISMATCH[/]",
                      f"{o.seconds:.1f}" if i == 0 else "")
        if test.weakened and not test.control:
            t.add_row("", "", "[yellow]no control[/]", "", escape(test.control_reason[:200]),
                      "", "")
        if o.error:
            t.add_row("", "", "[red]error[/]", "", escape(o.error[:200]), "", "")
    return t
