"""How fast the simulator runs: simulated seconds per wall-clock second.

    python benchmarks/sim_speed.py [--time-limit 60] [--nodes 5] [--rate 100] [--nemesis partition]
                                   [--seeds 1,2,3] [--workload cart]

One `harness run --platform sim` per seed (checkers run, no HTML report), printing the wall time
of the run itself (setup to teardown), its CPU time (the simulation is one thread: on a loaded
machine wall time is CPU time plus waiting for a core), the checkers' wall time, and simulated
seconds per wall and per CPU second.
The issue's targets: a 60-s, 5-node, 100 ops/s partition test in <= 2 s of wall time, and a
10-minute simulated soak (`--time-limit 600`) in under a minute.

The first line names the Python that ran it: the simulation is pure Python on one thread, and
the interpreter's build moves its speed by a sixth. On this machine Debian's python3.11
(`/usr/bin/python3`: profile-guided, link-time optimized, libpython linked into the executable)
runs it about 15% faster than pyenv's builds (3.11, 3.12 and 3.13 alike: no PGO or LTO,
libpython a shared library); the histories are the same bytes on all of them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.settings import ClusterSettings, TestSettings  # noqa: E402
from harness.sim.run import run_sim_test  # noqa: E402
from nemesis.schedule import parse_faults  # noqa: E402


def interpreter() -> str:
    """The running Python: version, executable, and how libpython is linked (a shared
    libpython without link-time optimization is the slower build; /proc tells on Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text()
        linked = ("libpython: shared library" if "/libpython" in maps
                  else "libpython: in the executable")
    except OSError:
        linked = "libpython: unknown"
    return f"python {platform.python_version()} ({sys.executable}), {linked}"


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
    print(f"# {interpreter()}")
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
