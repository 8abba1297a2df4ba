"""How fast the simulator runs: simulated seconds per wall-clock second.

    python benchmarks/sim_speed.py [--time-limit 60] [--nodes 5] [--rate 100] [--nemesis partition]
                                   [--seeds 1,2,3] [--workload cart]

One `harness run --platform sim` per seed (checkers run, no HTML report), printing the wall time
of the run itself (setup to teardown), its CPU time (the simulation is one thread: on a loaded
machine wall time is CPU time plus waiting for a core), the checkers' wall time, and simulated
seconds per wall and per CPU second.
The issue's targets: a 60-s, 5-node, 100 ops/s partition test in <= 2 s of wall time, and a
10-minute simulated soak (`--time-limit 600`) in under a minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.settings import ClusterSettings, TestSettings  # noqa: E402
from harness.sim.run import run_sim_test  # noqa: E402
from nemesis.schedule import parse_faults  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--nemesis", default="partition")
    ap.add_argument("--workload", default="cart")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--report", action="store_true", help="also render report.html")
    args = ap.parse_args()
    print(f"{'seed':>5} {'simulated s':>12} {'run wall s':>11} {'run cpu s':>10} "
          f"{'check s':>8} {'total s':>8} {'sim s / wall s':>15} {'sim s / cpu s':>14} "
          f"{'ops':>6} verdict")
    with tempfile.TemporaryDirectory() as out:
        for seed in (int(s) for s in args.seeds.split(",")):
            settings = TestSettings(workload=args.workload, platform="sim",
                                    nemesis=parse_faults(args.nemesis), seed=seed,
                                    time_limit=args.time_limit, rate=args.rate,
                                    cluster=ClusterSettings(nodes=args.nodes), out=Path(out))
            t0 = time.monotonic()
            outcome = run_sim_test(settings, report=args.report)
            total = time.monotonic() - t0
            cpu = outcome.timings["run_cpu_s"]
            run_s = outcome.timings["run_s"]
            virtual = outcome.timings["virtual_s"]
            ops = sum(1 for line in (outcome.run_dir / "history.jsonl").open()
                      if '"type":"invoke"' in line)
            print(f"{seed:>5} {virtual:>12.1f} {run_s:>11.2f} {cpu:>10.2f} {total - run_s:>8.2f} "
                  f"{total:>8.2f} {virtual / run_s:>15.1f} {virtual / cpu:>14.1f} {ops:>6} "
                  f"{outcome.verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
