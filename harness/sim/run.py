"""`harness run --platform sim`: the runner's phases, on the simulator.

The same `harness.runner.Run` (setup, workload with the nemesis, heal, quiesce, final reads,
teardown, check, report) with the parts that touch real time or the network swapped: the history
is stamped with virtual time, operations are paced on virtual time, clients call nodes in-process
(`harness.platforms.sim`), and the loop is `harness.sim.loop.VirtualLoop`. So the same seed (and
schedule) gives the same history, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import random
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from harness.history import History
from harness.nemesis_runner import NemesisRunner
from harness.platforms.sim import SimDynamoStore, SimPlatform
from harness.rundir import make_run_dir, point_latest, write_json
from harness.runner import EXIT_HARNESS, Run, RunOutcome, check_and_report
from harness.schedule_file import load_schedule
from harness.settings import ClusterSettings, TestSettings
from harness.sim.loop import VirtualLoop
from harness.sim.stats import SimStatsSampler
from harness.workloads import Request
from nemesis.schedule import Action, plan

GC_THRESHOLD = 20_000  # allocations between young collections during a run (Python's: 700)


class SimHistory(History):
    """The history, stamped with the loop's virtual time."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        super().__init__(path, started_ns=0, flush_each=False)

    def now(self) -> int:
        return round(self.loop.time() * 1e9)


class VirtualRateLimiter:
    """`harness.runner.RateLimiter` on the loop's clock."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = asyncio.get_running_loop().time()

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(self.next, now)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Idle:
    """A sampler with nothing to sample (one process: no per-node CPU or RSS)."""

    async def run(self) -> None:
        return None


class SimRun(Run):
    def __init__(self, settings: TestSettings, run_dir: Path, loop: VirtualLoop,
                 schedule: list[Action] | None = None, schedule_file: str | None = None) -> None:
        super().__init__(settings, run_dir, "quiet")
        self.history.close()
        (run_dir / "history.jsonl").unlink(missing_ok=True)
        self.history = SimHistory(run_dir / "history.jsonl", loop)
        self.store = SimDynamoStore(settings.cluster, settings.store_options)
        self.given_schedule = schedule
        self.schedule_file = schedule_file

    async def _setup(self, outcome: RunOutcome) -> None:
        t0 = time.monotonic()
        self.stats.phase = "setup"
        s = self.settings
        self.platform = SimPlatform(self.run_dir / "nodes", s.cluster, s.seed, self.store)
        outcome.urls = {n: self.platform.client_url(n) for n in self.platform.node_ids()}
        if self.given_schedule is None and s.schedule:
            self.given_schedule = load_schedule(s.schedule)[0]
            self.schedule_file = s.schedule
        self.schedule = self.given_schedule if self.given_schedule is not None else plan(
            self.platform.node_ids(), s.nemesis, s.nemesis_interval, s.time_limit,
            random.Random(f"{s.seed}-nemesis"), s.partitions, replicas=self.store.copies(),
            jitter=s.nemesis_jitter)
        write_json(self.run_dir / "test.json", self._test_json("running"))
        self.platform.start()
        self.nemesis = NemesisRunner(self.platform, self.history, self._holder)
        self.timings["setup_s"] = round(time.monotonic() - t0, 3)

    def _rate_limiter(self) -> Any:
        return VirtualRateLimiter(self.settings.rate)

    def _worker_session(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext()  # the sim client calls the coordinator: no HTTP session

    async def _final_reads(self) -> None:
        assert self.platform is not None
        self.stats.phase = "final reads"
        t0 = time.monotonic()
        nodes = self.platform.node_ids()
        gate = asyncio.Semaphore(10)
        timeout = self.settings.client_timeout_s

        async def read_key(i: int, op: Request) -> None:
            async with gate:
                process = self.next_process
                self.next_process += 1
                for attempt in range(len(nodes)):
                    node = nodes[(i + attempt) % len(nodes)]
                    client = self.store.client(None, node, "", timeout, final=True)
                    if await self._perform(process, client, op, final=True) == "ok":
                        return

        await asyncio.gather(*(read_key(i, op) for i, op in enumerate(self.workload.final_ops())))
        self.timings["final_reads_s"] = round(time.monotonic() - t0, 3)

    def _sampler(self) -> Any:
        return _Idle()

    def _stats_sampler(self) -> Any:
        """The nodes' counters into stats.jsonl, as real runs sample them, on virtual time."""
        assert self.platform is not None
        cluster = self.platform.cluster

        def live() -> dict[str, Any]:
            return {n: (None if cluster.is_paused(n) else cluster.node(n)) for n in cluster.ids()}

        return SimStatsSampler(self.run_dir / "stats.jsonl", live, self.history.now)

    def _test_json(self, status: str) -> dict[str, Any]:
        doc = super()._test_json(status)
        replay = replay_command(self.settings, self.schedule_file)
        doc["command"] = shlex.split(replay)
        doc["invoked_as"] = sys.argv
        doc["simulated"] = {
            "seed": self.settings.seed,
            "replay": replay,
            "virtual_time_s": round(self.history.loop.time(), 3),  # type: ignore[attr-defined]
            "note": "one process on virtual time: simulated network, disks and clocks; "
                    "no real TCP, kernel or fsync (docs/platforms.md)",
        }
        if self.schedule_file:
            doc["simulated"]["schedule_file"] = self.schedule_file
        return doc


def replay_command(s: TestSettings, schedule_file: str | None = None) -> str:
    """The one command that runs this simulated test again, identically."""
    d, c = ClusterSettings(), s.cluster
    args = ["harness", "run", "--platform", "sim", "--seed", str(s.seed),
            "--workload", s.workload, "--nemesis", ",".join(s.nemesis) or "none",
            "--time-limit", f"{s.time_limit:g}", "--rate", f"{s.rate:g}",
            "--concurrency", str(s.concurrency), "--keys", str(s.keys),
            "--ops-per-key", str(s.rotate_every),
            "--nemesis-interval", f"{s.nemesis_interval:g}",
            "--nemesis-jitter", f"{s.nemesis_jitter:g}",
            "--quiesce-timeout", f"{s.quiesce_timeout:g}", "--nodes", str(c.nodes)]
    if s.partitions:
        args += ["--partitions", ",".join(s.partitions)]
    for flag, value, default in (("--n", c.n, d.n), ("--r", c.r, d.r), ("--w", c.w, d.w),
                                 ("--q", c.q, d.q),
                                 ("--request-timeout-ms", c.request_timeout_ms,
                                  d.request_timeout_ms),
                                 ("--fsync", c.fsync, d.fsync)):
        if value != default:
            args += [flag, str(value)]
    if not c.sloppy:
        args.append("--strict")
    for bug in c.bugs:
        args += ["--bug", bug]
    for key, value in sorted(c.node_settings.items()):
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        args += ["--node-setting", f"{key}={text}"]
    if schedule_file:
        args += ["--schedule", schedule_file]
    if str(s.out) != "reports":
        args += ["--out", str(s.out)]
    return shlex.join(args)


def run_sim_test(settings: TestSettings, schedule: list[Action] | None = None,
                 schedule_file: str | None = None, report: bool = True) -> RunOutcome:
    """`harness.runner.run_test` on the simulator; `report` False skips the HTML (hunting)."""
    errors = settings.errors()
    if errors:
        raise ValueError("; ".join(errors))
    run_dir = make_run_dir(settings.out, settings.name)
    point_latest(settings.out, run_dir)
    outcome = RunOutcome(run_dir=run_dir)
    started, cpu = time.monotonic(), time.process_time()
    # a run allocates millions of short-lived objects: collect the young generation less often,
    # and keep what exists already (modules, settings) out of the collector's full passes
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *threshold[1:])
    loop = VirtualLoop()
    asyncio.set_event_loop(loop)
    with warnings.catch_warnings():
        # a killed node's coroutines are abandoned mid-flight by design (kill -9): one it had
        # made but not yet awaited would warn when collected
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        try:
            run = SimRun(settings, run_dir, loop, schedule, schedule_file)
            loop.run_until_complete(run.main(outcome))
        except KeyboardInterrupt:
            outcome.status = "interrupted"
        finally:
            _drop_leftovers(loop)
            asyncio.set_event_loop(None)
            loop.close()
            gc.set_threshold(*threshold)
            gc.unfreeze()
            gc.collect()  # this run's garbage, while the filter holds
    run.timings["run_s"] = round(time.monotonic() - started, 3)
    run.timings["run_cpu_s"] = round(time.process_time() - cpu, 3)
    run.timings["virtual_s"] = round(loop.time(), 3)
    test_doc = run._test_json(outcome.status)
    if outcome.error:
        test_doc["error"] = outcome.error
    write_json(run_dir / "test.json", test_doc)
    outcome.timings = run.timings
    if outcome.status != "complete":
        outcome.exit_code = EXIT_HARNESS
    elif report:
        check_and_report(settings, outcome)
    else:
        check_only(outcome)
    return outcome


def _drop_leftovers(loop: VirtualLoop) -> None:
    """What is still pending when a run ends (a killed node's tasks, a client's request the
    drain gave up on) never runs; close the coroutines that never started, so that nothing
    warns they were never awaited."""
    for task in asyncio.all_tasks(loop):
        coro = task.get_coro()
        if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            coro.close()


def check_only(outcome: RunOutcome) -> None:
    """The verdict without the HTML report."""
    from harness.checking import check_run, exit_code

    try:
        outcome.results = check_run(outcome.run_dir)
        outcome.verdict = outcome.results.get("verdict")
        outcome.exit_code = exit_code(outcome.results)
    except Exception as e:
        outcome.error = f"checking failed: {type(e).__name__}: {e}"
        outcome.exit_code = EXIT_HARNESS
