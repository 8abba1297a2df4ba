"""`harness hunt`: search schedules on the simulator for an invalid run, shrink it, replay it."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import click

from harness.workloads import WORKLOADS

EXIT_FOUND, EXIT_CLEAN, EXIT_HARNESS = 1, 0, 3


def parse_duration(text: str) -> float:
    """`60`, `60s`, `2m`, `1h` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration like 60s, 2m or 1h")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


@click.command(context_settings={"show_default": True})
@click.option("--platform", type=click.Choice(["sim"]), default="sim",
              help="only the simulator can replay a run exactly, which shrinking needs")
@click.option("--workload", type=click.Choice(list(WORKLOADS)), default=None,
              help="what the clients do [default: the bug's profile, else cart]")
@click.option("--bug", "bugs", multiple=True, metavar="NAME",
              help="seed this defect (repeatable; docs/bugs.md); the hunt then uses the "
                   "settings under which it can show (harness/hunt_profiles.py)")
@click.option("--budget", default="60s", help="search time (wall clock), e.g. 60s, 5m")
@click.option("--shrink-budget", default="60s",
              help="after the first failure, time to shrink it (wall clock)")
@click.option("--seed", type=int, default=None,
              help="seed of the search itself [default: random]; printed, so a hunt repeats")
@click.option("--nodes", type=int, default=5, help="nodes of the simulated cluster")
@click.option("--max-time-limit", type=int, default=15,
              help="longest run the search draws, in simulated seconds")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              help="where the shrunk schedule file and its replayed run go")
def hunt(platform: str, workload: str | None, bugs: tuple[str, ...], budget: str,
         shrink_budget: str, seed: int | None, nodes: int, max_time_limit: int,
         out: Path) -> int:
    """Search fault schedules and workload parameters on the simulator for an invalid run,
    shrink it to the fewest faults, shortest run and fewest operations, and replay it.

    hypothesis draws each scenario: a seed, the run's length, rate, clients and keys, and up to
    four faults (partitions of every shape, crashes, pauses, clock bumps, message delay and loss)
    with their nodes and times. On a failure it writes the shrunk schedule to OUT, prints the
    command that replays it (harness run --platform sim --schedule FILE --seed S ...) and
    replays it once with its report.

    Example: harness hunt --bug lww --budget 60s

    Exit codes: 1 a failure was found, 0 the budget ran out without one, 3 the harness failed.
    """
    from harness.hunt import base_settings, faults_in, replay_found
    from harness.hunt import hunt as search
    from harness.hunt_profiles import KNOWN_PROFILE_BUGS, profile_for

    unknown = [b for b in bugs if b not in KNOWN_PROFILE_BUGS]
    if unknown:
        raise click.BadParameter(f"unknown bug {', '.join(unknown)}; choose from "
                                 f"{', '.join(KNOWN_PROFILE_BUGS)}", param_hint="--bug")
    profile = profile_for(list(bugs))
    hunt_seed = seed if seed is not None else secrets.randbits(31)
    base = base_settings(workload or profile.workload, profile, list(bugs), nodes, out)
    errors = base.errors()
    if errors:
        raise click.UsageError("; ".join(errors))
    click.echo(f"hunting on the simulator: {base.workload}, bugs: {', '.join(bugs) or 'none'}, "
               f"faults: {', '.join(profile.faults) or 'none'}, budget {budget}, "
               f"seed {hunt_seed}")
    result = search(base, profile, parse_duration(budget), parse_duration(shrink_budget),
                    hunt_seed, max_time_limit, progress=click.echo)
    if result.found is None:
        click.echo(f"no failure in {result.examples} runs ({result.seconds:.1f} s)")
        return EXIT_CLEAN
    replay_found(result, base, out)
    assert result.schedule_file is not None and result.replayed is not None
    found = result.found
    click.echo(f"failure found in {result.first_found_s:.1f} s; shrunk over "
               f"{result.failures} failing runs of {result.examples} "
               f"({result.seconds:.1f} s) to {faults_in(result.schedule_file)} fault(s), "
               f"{found.operations} operations, {found.scenario.time_limit} s")
    for note in result.notes:
        click.echo(note)
    click.echo(f"schedule: {result.schedule_file}")
    click.echo(f"replay: {result.replay}")
    click.echo(f"replayed run: {result.replayed.run_dir} "
               f"(verdict {result.replayed.verdict or result.replayed.status})")
    return EXIT_FOUND
