"""The store benchmark runs end to end and prints its figures: one short round of every store
this machine has (about 2 s per phase); no figure is judged (timing is the benchmark's job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stores import STORES

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "store_throughput.py"


@pytest.mark.cluster
def test_store_throughput_prints_figures_for_each_store(tmp_path: Path) -> None:
    stores = [n for n, cls in STORES.items() if cls.missing() is None] + ["floor"]
    out = tmp_path / "figures.json"
    env = dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--store", ",".join(stores), "--rounds", "1",
         "--seconds", "2", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    for name in stores:
        rows = [line for line in lines if line.startswith(f"{name} ")]
        assert len(rows) >= 3, proc.stdout  # saturation, offered, summary
        if name != "dynamo":
            assert any(line.startswith(f"dynamo / {name}: ops/s x") for line in lines), proc.stdout
    figures = json.loads(out.read_text())
    assert [r["store"] for r in figures["runs"]] == stores
    for run in figures["runs"]:
        for phase in ("saturation", "offered"):
            assert run[phase]["ok"] > 0 and run[phase]["server_cpu_ms_per_op"] > 0, run
    assert set(figures["median"]) == set(stores)


def test_store_throughput_targets_are_relative_to_etcd_when_measured() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import store_throughput as st
    finally:
        sys.path.remove(str(BENCH.parent))
    etcd = {"saturation_ops_per_s": 2000.0, "offered_p999_ms": 8.0}
    met = st.targets({"median": {"dynamo": {"saturation_ops_per_s": 2700.0,
                                            "offered_p999_ms": 4.0}, "etcd": etcd}})
    assert met["against"] == "etcd" and met["target_saturation_met"] and met["target_p999_met"]
    missed = st.targets({"median": {"dynamo": {"saturation_ops_per_s": 2600.0,
                                               "offered_p999_ms": 4.1}, "etcd": etcd}})
    assert not missed["target_saturation_met"] and not missed["target_p999_met"]
    # with the floor measured: whether a target asks more than the floor server reached
    floor = {"saturation_ops_per_s": 2650.0, "offered_p999_ms": 4.05}
    under = st.targets({"median": {"dynamo": {"saturation_ops_per_s": 2600.0,
                                              "offered_p999_ms": 4.1}, "etcd": etcd,
                                   "floor": floor}})
    assert under["floor_offered_p999_ms"] == 4.05 and under["target_p999_under_floor"]
    assert under["target_saturation_over_floor"]  # 2,700 needed, the floor reached 2,650
    above = st.targets({"median": {"dynamo": {"saturation_ops_per_s": 2600.0,
                                              "offered_p999_ms": 4.1}, "etcd": etcd,
                                   "floor": {"saturation_ops_per_s": 9000.0,
                                             "offered_p999_ms": 2.5}}})
    assert not above["target_p999_under_floor"] and not above["target_saturation_over_floor"]
    alone = st.targets({"median": {"dynamo": {"saturation_ops_per_s": 2100.0,
                                              "offered_p999_ms": 20.0}}})
    assert alone["against"] == "absolute" and alone["target_saturation_met"]
