"""Sim runs write stats.jsonl as real runs do: every live node's counters once a virtual second,
the same bytes for the same seed; and a skewed node's clock moves only its wall clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from harness.node_stats import COUNTERS
from harness.settings import ClusterSettings, TestSettings
from harness.sim.cluster import EPOCH_MS, SimClock
from harness.sim.loop import NodeGate, VirtualLoop
from harness.sim.run import run_sim_test
from nemesis.schedule import parse_faults


def _run(out: Path, seed: int = 5) -> Path:
    settings = TestSettings(workload="cart", platform="sim", nemesis=parse_faults("crash,pause"),
                            seed=seed, time_limit=12.0, rate=50.0, nemesis_interval=3.0,
                            cluster=ClusterSettings(nodes=3), out=out)
    outcome = run_sim_test(settings, report=False)
    assert outcome.status == "complete", outcome.error
    return outcome.run_dir


def test_sim_runs_sample_node_counters_into_stats_jsonl(tmp_path: Path) -> None:
    run_dir = _run(tmp_path / "a")
    raw = (run_dir / "stats.jsonl").read_bytes()
    rows = [json.loads(line) for line in raw.decode().splitlines()]
    nodes = {"n1", "n2", "n3"}
    assert {r["node"] for r in rows} == nodes
    for r in rows:
        assert set(COUNTERS) <= set(r) and all(isinstance(r[c], int) for c in COUNTERS)
    ticks = sorted({r["time"] for r in rows})
    # once a virtual second, from setup to teardown: the whole run is covered
    assert len(ticks) >= 12
    assert all(b - a == 1_000_000_000 for a, b in zip(ticks, ticks[1:], strict=False))
    # a killed or paused node is skipped for the ticks it could not answer
    per_node = {n: sum(1 for r in rows if r["node"] == n) for n in nodes}
    assert min(per_node.values()) < len(ticks), per_node
    assert any(r[c] > 0 for r in rows for c in COUNTERS)  # the counters move
    # same seed, same bytes
    assert (_run(tmp_path / "b") / "stats.jsonl").read_bytes() == raw


def test_a_clock_skew_moves_the_wall_clock_and_not_the_timers() -> None:
    """As on the real platforms (libfaketime with FAKETIME_DONT_FAKE_MONOTONIC=1): the skew
    moves `wall_ms`, never the monotonic clock the node's timers run on."""
    loop = VirtualLoop()
    clock = SimClock(loop)
    gate = NodeGate("n1")
    woke: list[float] = []

    async def node_timer() -> None:
        await asyncio.sleep(2.0)
        woke.append(clock.monotonic())

    async def main() -> None:
        task = loop.create_task(node_timer(), context=gate.new_context())
        await asyncio.sleep(1.0)
        clock.offset_s = 3600.0  # an hour ahead
        assert clock.wall_ms() == EPOCH_MS + 3_601_000 and clock.monotonic() == 1.0
        await task

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert woke == [2.0]
