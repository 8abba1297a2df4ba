"""`harness run`: one or more Jepsen-style tests against a fresh cluster."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from harness.options import cluster_options, settings_from_options, ssh_options
from harness.settings import PLATFORMS, TestSettings, parse_node_setting
from harness.stores import DEFAULT_STORE, STORES
from harness.workloads import WORKLOADS
from nemesis.schedule import FAULT_HELP, parse_shapes

EXIT_HARNESS = 3


@click.command(context_settings={"show_default": True})
@click.option("--workload", type=click.Choice(list(WORKLOADS)), default=TestSettings.workload,
              help="what the clients do (see `harness list`)")
@click.option("--nemesis", "nemesis_spec", type=str, default="mix",
              help="faults, a comma list of: " + ", ".join(FAULT_HELP) + " (`harness list` "
                   "says what each does; mix: partition, clock, crash and pause, those the "
                   "store supports)")
@click.option("--platform", type=click.Choice(PLATFORMS), default="local",
              help="where the cluster runs: local processes, network namespaces (root), "
                   "Docker containers, your own machines over SSH, or sim: the reference "
                   "store in one process on virtual time, deterministic per seed (see "
                   "docs/platforms.md)")
@ssh_options
@click.option("--store", type=click.Choice(list(STORES)), default=DEFAULT_STORE,
              help="the system under test: the reference dynamo store, etcd (Debian's "
                   "etcd-server; workload cas-register) or redis (with Sentinel; workload set) "
                   "(`harness list` shows what each can run)")
@click.option("--store-option", "store_options", multiple=True, metavar="NAME",
              help="a store option (repeatable): etcd's serializable-reads (reads any member "
                   "answers from its own, possibly stale, state); redis's wait (WAIT 1 after "
                   "each add) and min-replicas (min-replicas-to-write 1)")
@cluster_options
@click.option("--time-limit", type=float, default=60.0, help="seconds of workload")
@click.option("--concurrency", type=int, default=10, help="client processes")
@click.option("--rate", type=float, default=100.0, help="total operations per second")
@click.option("--keys", type=int, default=10, help="keys (carts, registers) in play at a time")
@click.option("--ops-per-key", type=int, default=None,
              help="rotate keys: each key takes this many operations, then a fresh one replaces "
                   "it, so a run covers many keys and a key written under a fault is not "
                   "rewritten after the heal (0: the same keys all run; default: the "
                   "workload's, 50 for cart and register, 100 for cas-register, 0 for set)")
@click.option("--nemesis-interval", type=float, default=5.0,
              help="seconds each fault lasts; quiet gaps are 0.3-0.6 of this")
@click.option("--nemesis-jitter", type=float, default=0.5,
              help="scale each fault period and gap by a random factor in [1 - J, 1 + J] "
                   "(0: periods exactly --nemesis-interval long)")
@click.option("--partitions", "partitions_spec", type=str, default="all",
              help="partition shapes the partition nemesis picks from, a comma list of: "
                   "halves, isolate, majorities-ring, bridge, one-way")
@click.option("--seed", type=int, default=None,
              help="random seed for operations and the fault schedule [default: random]")
@click.option("--test-count", type=int, default=1, help="run the test this many times")
@click.option("--quiesce-timeout", type=float, default=15.0,
              help="after heal, seconds to wait at most for the replicas to agree")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              help="reports folder; each run goes to OUT/<test>/<timestamp>/")
@click.option("--leave-running", is_flag=True,
              help="keep the cluster running after the test (stop it with `harness cleanup`)")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the verdicts as JUnit XML to this file (for CI)")
@click.option("--display", type=click.Choice(["auto", "lines", "quiet"]), default="auto",
              help="live view: rich panel on a terminal (auto), a line every 5 s, or nothing")
@click.option("--bug", "bugs", multiple=True, metavar="NAME",
              help="seed this defect in every node (repeatable; see docs/bugs.md)")
@click.option("--schedule", type=click.Path(dir_okay=False, exists=True), default=None,
              help="play this nemesis schedule file (what `harness hunt` writes) instead of "
                   "the seeded plan; --nemesis becomes the faults it names. Exact on --platform "
                   "sim; on real platforms best effort (real timing decides the interleaving)")
@click.option("--node-setting", "node_settings", multiple=True, metavar="KEY=VALUE",
              help="an extra [cluster] setting for the nodes' cluster file (repeatable), "
                   "e.g. read_repair=false")
def run(workload: str, nemesis_spec: str, platform: str, store: str,
        store_options: tuple[str, ...], time_limit: float, concurrency: int,
        rate: float, keys: int, ops_per_key: int | None, nemesis_interval: float,
        nemesis_jitter: float, partitions_spec: str,
        seed: int | None, test_count: int, quiesce_timeout: float, out: Path, leave_running: bool,
        junit: Path | None, display: str, bugs: tuple[str, ...], node_settings: tuple[str, ...],
        schedule: str | None = None, hosts: Path | None = None,
        known_hosts: Path | None = None, insecure_accept_host_keys: bool = False,
        **cluster: object) -> int:
    """Run a Jepsen-style test: start a cluster, drive clients, inject faults, check, report.

    Each run goes through setup, the workload with faults, heal, quiesce (waiting for the
    replicas to agree), final reads, teardown, checking and the HTML report, and writes
    OUT/<workload>-<nemesis>/<timestamp>/ (OUT/latest points at it).

    Example: harness run --nemesis partition --workload cart --time-limit 20

    Your own machines: harness run --platform ssh --hosts hosts.toml --nemesis partition
    (one node per host; host keys checked against --known-hosts, default ~/.ssh/known_hosts)

    Another store: harness run --store etcd --workload cas-register --nemesis partition
    (--nodes sets the members; the Dynamo flags --n/--r/--w/--q/--bug do not apply), or
    harness run --store redis --workload set --nemesis partition --nodes 5

    Exit codes: 0 valid, 1 invalid, 2 unknown, 3 the harness failed (or a bad flag).
    """
    from harness.runner import run_test

    if test_count < 1:
        raise click.BadParameter(f"must be at least 1 (got {test_count})",
                                 param_hint="--test-count")
    if leave_running and test_count > 1:
        raise click.UsageError("--leave-running keeps one cluster; use it with --test-count 1")
    extra: dict[str, object] = {}
    for item in node_settings:
        try:
            key, value = parse_node_setting(item)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--node-setting") from None
        extra[key] = value
    cluster.update(bugs=list(dict.fromkeys(bugs)), node_settings=extra)
    if junit is not None:
        from harness.junit import writable_file_error

        why = writable_file_error(junit)
        if why:
            raise click.BadParameter(why, param_hint="--junit")
    if schedule is not None:
        nemesis_spec = _schedule_faults(schedule)
        if platform != "sim":
            click.echo(f"--schedule on the {platform} platform: best effort; real processes and "
                       "a real network decide the interleaving, so a failure the simulator "
                       "found may not happen here", err=True)
    base_seed = seed if seed is not None else secrets.randbits(31)
    codes = []
    for i in range(test_count):
        settings = settings_from_options(
            workload=workload, nemesis_spec=nemesis_spec, platform=platform, store=store,
            store_options=list(dict.fromkeys(store_options)),
            time_limit=time_limit, concurrency=concurrency, rate=rate, keys=keys,
            ops_per_key=ops_per_key, partitions=_shapes(partitions_spec),
            nemesis_interval=nemesis_interval, nemesis_jitter=nemesis_jitter,
            seed=base_seed + i, schedule=schedule,
            quiesce_timeout=quiesce_timeout, out=out, leave_running=leave_running,
            hosts=str(hosts) if hosts else None,
            known_hosts=str(known_hosts) if known_hosts else None,
            insecure_accept_host_keys=insecure_accept_host_keys, **cluster)
        if test_count > 1:
            click.echo(f"test {i + 1} of {test_count} (seed {settings.seed})")
        outcome = run_test(settings, display_mode=display)
        junit_error = None
        if junit is not None and outcome.results is not None:
            from harness.junit import JunitError, write_junit

            target = junit if test_count == 1 else junit.with_stem(f"{junit.stem}-{i + 1}")
            try:
                write_junit(outcome.results, target)
            except JunitError as e:
                junit_error = str(e)  # said below, after the verdict, which must not be lost
        click.echo(f"run directory: {outcome.run_dir}")
        report = outcome.run_dir / "report.html"
        if report.exists():
            click.echo(f"report: {report}")
        if outcome.status != "complete":
            click.echo(f"run {outcome.status}" + (f": {outcome.error}" if outcome.error else ""),
                       err=True)
        elif outcome.error:
            click.echo(f"harness error: {outcome.error}", err=True)
        if leave_running and outcome.status == "complete":
            click.echo(f"cluster left running: `harness cluster status --name "
                       f"{outcome.session_id}`; stop it with `harness cluster down --name "
                       f"{outcome.session_id}` or `harness cleanup`")
            for node, url in outcome.urls.items():
                click.echo(f"{node} {url}")
        click.echo(f"verdict: {outcome.verdict or 'none'} (exit {outcome.exit_code})")
        codes.append(outcome.exit_code)
        if junit_error:
            click.echo(f"harness error: {junit_error} (exit {EXIT_HARNESS})", err=True)
            codes.append(EXIT_HARNESS)
    return worst(codes)


def worst(codes: list[int]) -> int:
    """The exit code for several tests: a harness failure, else invalid, else unknown, else 0."""
    for code in (EXIT_HARNESS, 1, 2):
        if code in codes:
            return code
    return 0


def _schedule_faults(path: str) -> str:
    """The --nemesis list a schedule file stands for."""
    from harness.schedule_file import load_schedule
    from nemesis.schedule import FAULTS

    try:
        actions, _ = load_schedule(path)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--schedule") from None
    kinds = {a.fault for a in actions if a.fault}
    return ",".join(f for f in FAULTS if f in kinds) or "none"


def _shapes(spec: str) -> list[str]:
    """The partition shapes named by --partitions; [] stands for every shape."""
    try:
        shapes = parse_shapes(spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--partitions") from None
    return [] if spec.strip().lower() in ("", "all") else shapes
