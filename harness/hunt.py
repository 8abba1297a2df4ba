"""`harness hunt`: search fault schedules and workload parameters on the simulator for a run
that is not valid, then shrink it to the smallest one that still fails.

hypothesis draws a scenario (a seed, the run's length, rate, clients and keys, and up to four
faults: partitions of every shape, crashes, pauses, clock bumps, message delay and loss, each
with its nodes, start and length); the property is "the simulated run is valid". A simulated run
is a pure function of its scenario, so hypothesis can shrink a failure: fewer faults, a shorter
run, fewer clients and operations. The smallest failure is written as a schedule file and
replayed once more with its report; `replay` is the one command that runs it again.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

from harness.hunt_profiles import Profile
from harness.runner import RunOutcome
from harness.schedule_file import faults_of, save_schedule
from harness.settings import ClusterSettings, TestSettings
from harness.sim.run import replay_command, run_sim_test
from nemesis.grudges import GRUDGES, grudge_to_json
from nemesis.schedule import FAULTS, Action

MAX_FAULTS = 4
HUNT_QUIESCE_S = 8.0


@dataclass
class Scenario:
    """One drawn run: the workload's parameters and the fault schedule."""

    seed: int
    time_limit: int
    rate: int
    concurrency: int
    keys: int
    faults: list[tuple[float, float, str, dict[str, Any]]]  # start, stop, fault, value

    def actions(self) -> list[Action]:
        out: list[Action] = []
        for i, (start, stop, kind, value) in enumerate(self.faults, 1):
            out.append(Action(start, "start", kind, value, i))
            out.append(Action(stop, "stop", kind, _stop_value(kind, value), i))
        out.sort(key=lambda a: (a.at, a.f != "stop", a.id))
        out.append(Action(float(self.time_limit), "heal", None, {}, 0))
        return out

    def kinds(self) -> list[str]:
        used = {kind for _, _, kind, _ in self.faults}
        return [f for f in FAULTS if f in used]


def _stop_value(kind: str, start: dict[str, Any]) -> dict[str, Any]:
    if kind == "partition":
        return {"kind": start["kind"]}
    if kind == "clock":
        return {"kind": "bump", "nodes": sorted(start["offsets"])}
    return {"nodes": start["nodes"]}


def _targets(nodes: Sequence[str], most: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(list(nodes)), min_size=1, max_size=max(1, most),
                    unique=True).map(sorted)


@st.composite
def _fault(draw: Callable, nodes: Sequence[str], kinds: Sequence[str],
           time_limit: int) -> tuple[float, float, str, dict[str, Any]]:
    kind = draw(st.sampled_from(list(kinds)))
    start = draw(st.integers(0, time_limit * 10 - 1)) / 10
    stop = min(start + draw(st.integers(5, time_limit * 10)) / 10, float(time_limit))
    minority = max(1, (len(nodes) - 1) // 2)
    if kind == "partition":
        shape = draw(st.sampled_from(sorted(GRUDGES)))
        grudge = GRUDGES[shape](list(nodes), random.Random(draw(st.integers(0, 255))))
        value: dict[str, Any] = {"kind": shape, "grudge": grudge_to_json(grudge)}
    elif kind in ("crash", "pause", "power"):
        value = {"nodes": draw(_targets(nodes, len(nodes) - 1 if kind == "crash" else minority))}
    elif kind == "clock":
        targets = draw(_targets(nodes, len(nodes)))
        value = {"kind": "bump",
                 "offsets": {n: draw(st.integers(-120_000, 120_000)) / 1000 for n in targets}}
    else:  # packet
        value = {"nodes": draw(_targets(nodes, minority)),
                 "delay_ms": float(draw(st.integers(0, 300))),
                 "jitter_ms": float(draw(st.integers(0, 50))),
                 "loss_percent": float(draw(st.integers(0, 50)))}
    return start, stop, kind, value


def scenarios(nodes: Sequence[str], kinds: Sequence[str], profile: Profile,
              max_time: int) -> st.SearchStrategy[Scenario]:
    """Every draw shrinks toward a smaller run: seed 0, 2 s, 10 ops/s, one client, no faults."""
    @st.composite
    def build(draw: Callable) -> Scenario:
        time_limit = draw(st.integers(2, max_time))
        faults = draw(st.lists(_fault(nodes, kinds, time_limit), max_size=MAX_FAULTS)
                      if kinds else st.just([]))
        return Scenario(seed=draw(st.integers(0, 1 << 16)), time_limit=time_limit,
                        rate=draw(st.integers(10, 100)), concurrency=draw(st.integers(1, 10)),
                        keys=draw(st.integers(*profile.keys)), faults=faults)
    return build()


@dataclass
class Found:
    scenario: Scenario
    outcome: RunOutcome
    operations: int

    @property
    def size(self) -> tuple[int, int, int]:
        return (len(self.scenario.faults), self.operations, self.scenario.time_limit)


@dataclass
class HuntResult:
    examples: int = 0
    seconds: float = 0.0
    found: Found | None = None
    first_found_s: float | None = None
    first_found_runs: int | None = None
    first_found_cpu_s: float | None = None
    schedule_file: Path | None = None
    replay: str | None = None
    replayed: RunOutcome | None = None
    failures: int = 0
    notes: list[str] = field(default_factory=list)


class _OutOfTime(BaseException):
    """The budget ran out: stop hypothesis (a BaseException, so it is not taken as a failure)."""


def settings_for(scn: Scenario, base: TestSettings) -> TestSettings:
    cluster = replace(base.cluster, node_settings=dict(base.cluster.node_settings),
                      bugs=list(base.cluster.bugs))
    return replace(base, cluster=cluster, seed=scn.seed, time_limit=float(scn.time_limit),
                   rate=float(scn.rate), concurrency=scn.concurrency, keys=scn.keys,
                   nemesis=scn.kinds(), schedule=None)


def base_settings(workload: str, profile: Profile, bugs: list[str], nodes: int,
                  out: Path) -> TestSettings:
    cluster = ClusterSettings(**{"nodes": nodes, **profile.cluster}, bugs=list(bugs),
                              node_settings=dict(profile.node_settings))
    return TestSettings(workload=workload, platform="sim", cluster=cluster,
                        ops_per_key=profile.ops_per_key, quiesce_timeout=HUNT_QUIESCE_S,
                        out=out)


def hunt(base: TestSettings, profile: Profile, budget_s: float, shrink_budget_s: float,
         hunt_seed: int, max_time: int = 15,
         progress: Callable[[str], None] = lambda _: None) -> HuntResult:
    """Search until a failure is found and shrunk, or the budget runs out."""
    result = HuntResult()
    started, cpu_started = time.monotonic(), time.process_time()
    nodes = [f"n{i}" for i in range(1, base.cluster.nodes + 1)]
    kinds = [k for k in profile.faults if k in FAULTS]
    scratch = Path(tempfile.mkdtemp(prefix="hunt-"))
    deadline = [started + budget_s]

    def run_one(scn: Scenario) -> None:
        if time.monotonic() > deadline[0]:
            raise _OutOfTime
        s = settings_for(scn, base)
        s.out = scratch
        outcome = run_sim_test(s, schedule=scn.actions(), report=False)
        result.examples += 1
        failed = outcome.status != "complete" or outcome.verdict == "invalid"
        if failed:
            ops = _operations(outcome.run_dir)
            found = Found(scn, outcome, ops)
            result.failures += 1
            if result.found is None:
                result.first_found_s = time.monotonic() - started
                result.first_found_runs = result.examples
                result.first_found_cpu_s = time.process_time() - cpu_started
                deadline[0] = time.monotonic() + shrink_budget_s
                progress(f"found a failure after {result.examples} runs "
                         f"({result.first_found_s:.1f} s): {len(scn.faults)} faults, "
                         f"{ops} operations; shrinking")
            if result.found is None or found.size < result.found.size:
                result.found = found
            shutil.rmtree(outcome.run_dir, ignore_errors=True)
            raise AssertionError(f"run {outcome.verdict or outcome.status}")
        shutil.rmtree(outcome.run_dir, ignore_errors=True)
        if result.examples % 10 == 0 and result.found is None:
            progress(f"{result.examples} runs in {time.monotonic() - started:.0f} s, "
                     "none failed yet")

    conf = settings(max_examples=1_000_000, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False)
    test = seed(hunt_seed)(conf(given(scenarios(nodes, kinds, profile, max_time))(run_one)))
    try:
        test()
    except _OutOfTime:
        if result.found is not None:
            result.notes.append("shrinking stopped at its budget; the smallest failure so "
                                "far is reported")
    except AssertionError:
        pass  # hypothesis re-raises the shrunk failure; `result.found` holds it
    result.seconds = time.monotonic() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def replay_found(result: HuntResult, base: TestSettings, out: Path) -> None:
    """Write the shrunk schedule, replay it with a full report, and the replay command."""
    assert result.found is not None
    scn = result.found.scenario
    s = settings_for(scn, base)
    s.out = out
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = (out / f"hunt-{stamp}-schedule.json").resolve()
    save_schedule(path, scn.actions(), [f"n{i}" for i in range(1, s.cluster.nodes + 1)],
                  found={"seed": scn.seed, "bugs": s.cluster.bugs, "workload": s.workload,
                         "faults": len(scn.faults), "operations": result.found.operations})
    s.schedule = str(path)
    result.schedule_file = path
    result.replay = replay_command(s, str(path))
    result.replayed = run_sim_test(s, schedule=scn.actions(), schedule_file=str(path))


def _operations(run_dir: Path) -> int:
    """Client operations invoked in the run's history."""
    with (run_dir / "history.jsonl").open(encoding="utf-8") as f:
        return sum(1 for line in f if '"type":"invoke"' in line and '"nemesis"' not in line)


def faults_in(path: Path) -> int:
    from harness.schedule_file import load_schedule

    return faults_of(load_schedule(path)[0])
