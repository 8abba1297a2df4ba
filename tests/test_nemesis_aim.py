"""The crash that follows a crash aims at the node holding the most hints (nemesis/schedule.py
`_heal_crash`), killed before the crashed nodes restart, and its stop restarts that same node;
the keys retired during a fault come back after it. On the simulator: real node code, one seed."""

from __future__ import annotations

import json
from pathlib import Path

from harness.settings import ClusterSettings, TestSettings
from harness.sim.run import run_sim_test
from nemesis.schedule import HINT_HOLDER, parse_faults


def test_a_crash_after_a_crash_takes_the_hint_holder_and_restarts_it(tmp_path: Path) -> None:
    settings = TestSettings(workload="register", platform="sim", nemesis=parse_faults("crash"),
                            seed=4, time_limit=30, cluster=ClusterSettings(nodes=5),
                            out=tmp_path)
    outcome = run_sim_test(settings, report=False)
    rows = [json.loads(line) for line in (outcome.run_dir / "history.jsonl").open()]
    steps = [r for r in rows if r["process"] == "nemesis" and r["f"] in ("start", "stop")]
    # a step is two records, invocation then completion; the completion says what was done
    done = steps[1::2]
    aimed = [r for r in done if r["f"] == "start" and r["value"].get("target") == HINT_HOLDER]
    assert aimed, "seed 4 schedules a crash after a crash"
    took = [r for r in aimed if r["value"].get("holder")]
    assert took, aimed
    for start in took:
        node = start["value"]["holder"]
        assert start["value"]["nodes"] == [node]
        assert node not in start["value"]["restarting"]
        # ended by its own stop, which restarts the node it took, or by the final heal
        stop = next((r for r in done if r["f"] == "stop" and r["time"] > start["time"]
                     and r["fault"] == "crash" and node in r["value"]["nodes"]), None)
        heal = next(r for r in rows if r["process"] == "nemesis" and r["f"] == "heal")
        assert (stop is not None and stop["value"]["nodes"] == [node]) or (
            f"crash {node}" in heal["value"]["active"])
    assert outcome.verdict == "valid", outcome.verdict
