"""One test run: setup, workload with faults, heal, quiesce, final reads, teardown, check, report.

Teardown runs on every path out (normal end, Ctrl-C / SIGTERM, errors): faults are healed, every
node the run started is stopped, and the session record is removed. The history is flushed line by
line, so whatever happened before an interruption is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import platform as pyplatform
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from harness.client import Client, client_session
from harness.history import History
from harness.live import Stats, display
from harness.nemesis_runner import NemesisRunner
from harness.node_stats import NodeStatsSampler
from harness.platforms.base import Platform
from harness.platforms.local import LocalPlatform
from harness.resources import ResourceSampler
from harness.rundir import make_run_dir, point_latest, write_json
from harness.schedule_file import load_schedule
from harness.settings import TestSettings
from harness.state import Session
from harness.stores import FinalState, NodeCounters, Roles, Store, make_store
from harness.workloads import Request, Workload, make_workload
from nemesis.schedule import HINT_HOLDER, Action, base_fault, plan

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_HARNESS = 0, 1, 2, 3
FINAL_READ_CONCURRENCY = 10
DRAIN_GRACE_S = 3.0
NEMESIS_GRACE_S = 25.0  # a restart waits up to 20 s for the node to answer
# however long the hints took, the replicas' views are still polled for a few seconds
MIN_CONVERGE_WAIT_S = 3.0
HANDOFF_ROUNDS = 3  # as checkers/handoff.py: the wait must span this many handoff rounds


@dataclass
class RunOutcome:
    run_dir: Path
    status: str = "running"  # complete | interrupted | failed
    exit_code: int = EXIT_HARNESS
    verdict: str | None = None
    error: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] | None = None
    session_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """The run completed and every checker found it valid."""
        return self.status == "complete" and self.verdict == "valid"


class RateLimiter:
    """Spaces operations `1/rate` apart across all workers, never bursting to catch up."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(self.next, now)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def make_platform(settings: TestSettings, root: Path, session: Session,
                  store: Store | None = None) -> Platform:
    """The platform that runs `store` (the settings' store when None) for these settings."""
    clock = "clock" in settings.nemesis
    if store is None:
        store = make_store(settings.store, settings.cluster, settings.store_options)
    if settings.platform == "local":
        return LocalPlatform(root, settings.cluster, session, clock=clock, store=store,
                             power="power" in settings.nemesis)
    if settings.platform == "netns":
        from harness.platforms.netns import NetnsPlatform

        return NetnsPlatform(root, settings.cluster, session, clock=clock, store=store,
                             power="power" in settings.nemesis)
    if settings.platform == "docker":
        from harness.platforms.docker import DockerPlatform

        return DockerPlatform(root, settings.cluster, session, clock=clock, store=store,
                              power="power" in settings.nemesis)
    if settings.platform == "ssh":
        from harness.platforms.ssh import SshPlatform

        return SshPlatform.from_settings(root, settings, session, store, clock)
    raise ValueError(f"unknown platform {settings.platform!r}")


class Run:
    """The state of one run while its event loop is going."""

    def __init__(self, settings: TestSettings, run_dir: Path, display_mode: str) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.display_mode = display_mode
        self.stats = Stats()
        self.stop = asyncio.Event()
        self.interrupted = False
        self.history = History(run_dir / "history.jsonl")
        self.session = Session.create("run", run_dir)
        self.store: Store = make_store(settings.store, settings.cluster, settings.store_options)
        self.store_version = self.store.version()
        self.platform: Platform | None = None
        self.nemesis: NemesisRunner | None = None
        self.workload: Workload = make_workload(
            settings.workload, settings.keys, random.Random(f"{settings.seed}-workload"),
            settings.rotate_every)
        self.schedule: list[Action] = []
        self.next_process = settings.concurrency
        self.workload_started_ns: int | None = None
        self.timings: dict[str, Any] = {}
        self.heal_time: int | None = None

    # -- signals -----------------------------------------------------------------------------

    def on_signal(self, main: asyncio.Task) -> None:
        if not self.interrupted:
            self.interrupted = True
            self.stop.set()
            if self.stats.phase in ("quiesce", "final reads"):
                main.cancel()  # faults are already healed; nothing left worth waiting for
            print("\ninterrupted: healing faults and stopping the cluster "
                  "(interrupt again to stop at once)", file=sys.stderr, flush=True)
        else:
            main.cancel()

    # -- phases ------------------------------------------------------------------------------

    async def main(self, outcome: RunOutcome) -> None:
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        assert main_task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal, main_task)
        background: list[asyncio.Task] = []
        try:
            background.append(asyncio.create_task(display(
                self.stats, self.settings.time_limit, self._faults, self._elapsed,
                self.display_mode)))
            await self._setup(outcome)
            background.append(asyncio.create_task(self._sampler().run()))
            if isinstance(self.store, NodeCounters):
                background.append(asyncio.create_task(self._stats_sampler().run()))
            if not self.stop.is_set():
                await self._workload_phase()
            await self._heal()
            if not self.interrupted:
                await self._quiesce_and_collect()
                await self._final_reads()
            outcome.status = "interrupted" if self.interrupted else "complete"
        except asyncio.CancelledError:
            outcome.status = "interrupted"
        except Exception as e:
            outcome.status = "failed"
            outcome.error = f"{type(e).__name__}: {e}"
            (self.run_dir / "harness-error.txt").write_text(traceback.format_exc())
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.stats.phase = "teardown"
            self._teardown(outcome)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.history.close()

    async def _setup(self, outcome: RunOutcome) -> None:
        t0 = time.monotonic()
        self.stats.phase = "setup"
        nodes_root = self.run_dir / "nodes"
        self.platform = make_platform(self.settings, nodes_root, self.session, self.store)
        outcome.urls = {n: self.platform.client_url(n) for n in self.platform.node_ids()}
        self.schedule = plan(self.platform.node_ids(), self.settings.nemesis,
                             self.settings.nemesis_interval, self.settings.time_limit,
                             random.Random(f"{self.settings.seed}-nemesis"),
                             self.settings.partitions, replicas=self.store.copies(),
                             jitter=self.settings.nemesis_jitter)
        if self.settings.schedule:  # a simulated failure replayed here: best effort
            self.schedule = load_schedule(self.settings.schedule)[0]
        write_json(self.run_dir / "test.json", self._test_json("running"))
        await asyncio.to_thread(self.platform.start)
        self.nemesis = NemesisRunner(self.platform, self.history, self._holder)
        self.timings["setup_s"] = round(time.monotonic() - t0, 3)

    async def _workload_phase(self) -> None:
        assert self.platform is not None and self.nemesis is not None
        t0 = time.monotonic()
        self.stats.phase = "workload"
        self.workload_started_ns = self.history.now()
        limiter = self._rate_limiter()
        nemesis_task = asyncio.create_task(
            self.nemesis.run(self.schedule, self.workload_started_ns, self.stop))
        workers = [asyncio.create_task(self._worker(i, limiter))
                   for i in range(self.settings.concurrency)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=self.settings.time_limit)
        self.stop.set()
        self.stats.phase = "draining"
        _, pending = await asyncio.wait(
            workers, timeout=self.settings.client_timeout_s + DRAIN_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        # let a step already under way finish, so its completion is in the history
        await asyncio.wait([nemesis_task], timeout=NEMESIS_GRACE_S)
        nemesis_task.cancel()
        await asyncio.gather(nemesis_task, return_exceptions=True)
        self.timings["workload_s"] = round(time.monotonic() - t0, 3)

    def _rate_limiter(self) -> RateLimiter:
        return RateLimiter(self.settings.rate)

    async def _worker(self, index: int, limiter: RateLimiter) -> None:
        assert self.platform is not None
        nodes = self.platform.node_ids()
        process = index
        timeout = self.settings.client_timeout_s
        bound = self.store.bind_workers_to_nodes  # Jepsen's rule; the reference store's own
        async with self._worker_session() as session:
            clients = {n: self.store.client(session, n, self.platform.client_url(n), timeout)
                       for n in nodes}
            try:
                while not self.stop.is_set():
                    await limiter.wait()
                    if self.stop.is_set():
                        break
                    op = self.workload.next_op()
                    node = nodes[(index if bound else process) % len(nodes)]
                    kind = await self._perform(process, clients[node], op)
                    if kind == "info":
                        # Jepsen's rule: an indeterminate process never issues again
                        process = self.next_process
                        self.next_process += 1
            finally:
                for client in clients.values():
                    await client.close()

    def _worker_session(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The HTTP session a worker's clients share (the simulator's clients need none)."""
        return client_session(connector=aiohttp.TCPConnector(limit=4, force_close=False))

    async def _perform(self, process: int, client: Client, op: Request,
                       final: bool = False) -> str:
        common: dict[str, Any] = {"process": process, "f": op.f, "node": client.node}
        if op.key is not None:
            common["key"] = op.key
        if final:
            common["final"] = True
        self.history.append(type="invoke", value=op.value, **common)
        try:
            done = await self.workload.execute(client, op)
        except asyncio.CancelledError:
            kind = "fail" if op.f in self.workload.read_fs else "info"
            self.history.append(type=kind, value=None, error="interrupted", **common)
            self.stats.completed(kind)
            raise
        self.history.append(type=done.type, value=done.value, **done.extra, **common)
        self.stats.completed(done.type)
        return done.type

    async def _heal(self) -> None:
        if self.nemesis is None:
            return
        self.stats.phase = "heal"
        t0 = time.monotonic()
        # a run without faults has nothing to record, but a node may still need restarting
        await self.nemesis.heal(record=bool(self.settings.nemesis) or self.interrupted)
        self.heal_time = self.history.now()
        self.timings["heal_s"] = round(time.monotonic() - t0, 3)

    async def _quiesce_and_collect(self) -> None:
        assert self.platform is not None
        self.stats.phase = "quiesce"
        t0 = time.monotonic()
        hints = None
        if isinstance(self.store, NodeCounters):
            # hinted handoff first: a hint may hold a version no replica has yet, and every
            # hint must reach its owner now that all are up (checkers/handoff.py)
            by_node = {n: self.platform.client_url(n) for n in self.platform.node_ids()}
            hints = await self.store.wait_hints_drained(by_node, self._hint_wait_s(),
                                                        self.history.now)
            self.timings["hints_drained"] = bool(hints and hints["drained_time"] is not None)
        if isinstance(self.store, FinalState):
            urls = [self.platform.client_url(n) for n in self.platform.node_ids()]
            keys = sorted(self.workload.written_keys)
            left = self.settings.quiesce_timeout - (time.monotonic() - t0)
            converged, views = await self.store.final_state(
                urls, keys, max(left, MIN_CONVERGE_WAIT_S), self.history.now)
            document = self.store.replicas_document(self.heal_time, converged, views)
            if hints is not None:
                document["hints"] = hints
            write_json(self.run_dir / "replicas.json", document)
            self.timings["converged"] = converged is not None
        else:
            # no replica view: wait (bounded) until every node is ready again
            self.timings["ready"] = await asyncio.to_thread(self._wait_all_ready)
        self.timings["quiesce_s"] = round(time.monotonic() - t0, 3)

    def _hint_wait_s(self) -> float:
        """The quiesce's budget for hints to drain; none (one look) when the test told the store
        to hand off too seldom for the wait to see it (the smoke suite turns handoff off so)."""
        every = self.settings.cluster.node_settings.get("handoff_interval_ms")
        if isinstance(every, int) and every * HANDOFF_ROUNDS > self.settings.quiesce_timeout * 1e3:
            return 0.0
        return self.settings.quiesce_timeout

    def _holder(self, role: str) -> str | None:
        """The node holding `role` now, for faults aimed at it (None: cannot tell)."""
        if self.platform is None:
            return None
        if role == HINT_HOLDER:
            return self._most_hints()
        if not isinstance(self.store, Roles):
            return None
        return self.store.holder(role, [self.platform.spec(n) for n in self.platform.node_ids()])

    def _most_hints(self) -> str | None:
        """The node holding the most undelivered hints, by the counters its status reports (a
        store that reports none, or a cluster holding none: None)."""
        assert self.platform is not None
        counts = {}
        for node in self.platform.node_ids():
            status = self.platform.status(node) or {}
            pending = (status.get("stats") or {}).get("hints_pending")
            if isinstance(pending, int) and pending > 0:
                counts[node] = pending
        return max(sorted(counts), key=counts.__getitem__) if counts else None

    def _wait_all_ready(self) -> bool:
        assert self.platform is not None
        deadline = time.monotonic() + self.settings.quiesce_timeout
        specs = [self.platform.spec(n) for n in self.platform.node_ids()]
        while not self.store.settled(specs):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    async def _final_reads(self) -> None:
        assert self.platform is not None
        self.stats.phase = "final reads"
        t0 = time.monotonic()
        nodes = self.platform.node_ids()
        gate = asyncio.Semaphore(FINAL_READ_CONCURRENCY)
        timeout = self.settings.client_timeout_s

        async with client_session() as session:
            async def read_key(i: int, op: Request) -> None:
                async with gate:
                    process = self.next_process
                    self.next_process += 1
                    # try each node in turn until one answers; every attempt is in the history
                    for attempt in range(len(nodes)):
                        node = nodes[(i + attempt) % len(nodes)]
                        client = self.store.client(session, node,
                                                   self.platform.client_url(node), timeout,
                                                   final=True)
                        try:
                            if await self._perform(process, client, op, final=True) == "ok":
                                return
                        finally:
                            await client.close()

            await asyncio.gather(*(read_key(i, op)
                                   for i, op in enumerate(self.workload.final_ops())))
        self.timings["final_reads_s"] = round(time.monotonic() - t0, 3)

    def _teardown(self, outcome: RunOutcome) -> None:
        if self.platform is None:
            self.session.remove()
            return
        keep = self.settings.leave_running and outcome.status == "complete"
        if keep:
            # hand the cluster over to `harness cluster`/`harness cleanup`
            outcome.session_id = self.session.id
            self.session.kind = "cluster"
            self.session.owner = {}
            self.session.save()
        else:
            try:
                self.platform.stop()
            finally:
                self.session.remove()

    # -- helpers -----------------------------------------------------------------------------

    def _sampler(self) -> ResourceSampler:
        assert self.platform is not None
        return ResourceSampler(self.run_dir / "resources.jsonl", self.platform.pids,
                               self.history.now)

    def _stats_sampler(self) -> NodeStatsSampler:
        assert self.platform is not None
        urls = {n: self.platform.client_url(n) for n in self.platform.node_ids()}
        return NodeStatsSampler(self.run_dir / "stats.jsonl", lambda: urls, self.history.now,
                                headers=self.store.admin_headers())

    def _faults(self) -> list[str]:
        return self.nemesis.describe_active() if self.nemesis else []

    def _elapsed(self) -> float:
        if self.workload_started_ns is None:
            return 0.0
        return (self.history.now() - self.workload_started_ns) / 1e9

    def _test_json(self, status: str) -> dict[str, Any]:
        p = self.platform
        return {
            "name": self.settings.name,
            "status": status,
            "settings": self.settings.to_json(),
            "seed": self.settings.seed,
            "command": sys.argv,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {
                "python": pyplatform.python_version(),
                "harness": _version("dynamo-jepsen"),
                "aiohttp": _version("aiohttp"),
            },
            "platform": self.settings.platform,
            "store_version": self.store_version,
            "mechanisms": ({f: p.mechanisms.get(base_fault(f), "") for f in self.settings.nemesis}
                           if p else {}),
            "nodes": {n: p.client_url(n) for n in p.node_ids()} if p else {},
            **(p.test_info() if p else {}),
            "schedule": [{"at": a.at, "f": a.f, "fault": a.fault, "value": a.value}
                         for a in self.schedule],
            "timings": self.timings,
        }


def run_test(settings: TestSettings, display_mode: str = "auto") -> RunOutcome:
    """Run one test to the end of teardown, then check and report it. Settings a store cannot
    run (`settings.errors()`) raise ValueError before anything starts."""
    if settings.platform == "sim":  # one process on virtual time (harness/sim/)
        from harness.sim.run import run_sim_test

        return run_sim_test(settings)
    errors = settings.errors()
    if errors:
        raise ValueError("; ".join(errors))
    run_dir = make_run_dir(settings.out, settings.name)
    point_latest(settings.out, run_dir)
    outcome = RunOutcome(run_dir=run_dir)
    started = time.monotonic()
    run = Run(settings, run_dir, display_mode)
    try:
        asyncio.run(run.main(outcome))
    except KeyboardInterrupt:
        outcome.status = "interrupted"
    run.timings["run_s"] = round(time.monotonic() - started, 3)
    test_doc = run._test_json(outcome.status)
    if outcome.error:
        test_doc["error"] = outcome.error
    write_json(run_dir / "test.json", test_doc)
    outcome.timings = run.timings
    if outcome.status == "complete":
        check_and_report(settings, outcome)
    else:
        outcome.exit_code = EXIT_HARNESS
    return outcome


def check_and_report(settings: TestSettings, outcome: RunOutcome) -> None:
    """Run the checkers and render the report; any failure of either is a harness failure."""
    from harness.checking import check_run, exit_code
    from harness.report import render_index, render_run

    t0 = time.monotonic()
    try:
        results = check_run(outcome.run_dir)
        outcome.results = results
        outcome.verdict = results.get("verdict")
        outcome.exit_code = exit_code(results)
    except Exception as e:
        outcome.error = f"checking failed: {type(e).__name__}: {e}"
        outcome.exit_code = EXIT_HARNESS
        (outcome.run_dir / "harness-error.txt").write_text(traceback.format_exc())
        return
    outcome.timings["check_s"] = round(time.monotonic() - t0, 3)
    t1 = time.monotonic()
    try:
        render_run(outcome.run_dir)
        render_index(settings.out)
    except Exception as e:  # the verdict stands; the missing report is the harness's failure
        outcome.error = f"report failed: {type(e).__name__}: {e}"
        outcome.exit_code = EXIT_HARNESS
        (outcome.run_dir / "harness-error.txt").write_text(traceback.format_exc())
    outcome.timings["report_s"] = round(time.monotonic() - t1, 3)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
