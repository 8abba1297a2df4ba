"""The zoo in the simulator: for every seeded bug, whether `harness hunt` finds it, how fast,
and how small the shrunk failure is; and the correct store hunted for as long.

    python benchmarks/sim_catch.py [--budget 60] [--shrink-budget 30] [--seed 1] [--only lww]
                                   [--correct-budget 300]
    python benchmarks/bug_catch.py --platform sim ...    # the same

Each bug is hunted with a fixed search seed in this process (`harness.hunt.hunt`), so the
scenarios tried are the same on every machine; the seconds are wall time. The issue's goal:
every bug found within 10 s, shrunk to at most 3 faults; the correct store: nothing in 5 min.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.hunt import base_settings, hunt  # noqa: E402
from harness.hunt_profiles import KNOWN_PROFILE_BUGS, PROFILES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", choices=["sim"], default="sim")
    ap.add_argument("--budget", type=float, default=60.0, help="search seconds per bug")
    ap.add_argument("--shrink-budget", type=float, default=30.0)
    ap.add_argument("--correct-budget", type=float, default=0.0,
                    help="also hunt the correct store this long (0: not)")
    ap.add_argument("--seed", type=int, default=1, help="the search's seed")
    ap.add_argument("--only", action="append", default=[], help="a bug name (repeatable)")
    args = ap.parse_args(argv)
    bugs = args.only or list(KNOWN_PROFILE_BUGS)
    if args.correct_budget > 0:
        bugs.append("")
    print("| bug | found | seconds to find | CPU s to find | runs to find | faults (shrunk) | "
          "operations (shrunk) | simulated s (shrunk) | hunt s |\n"
          "|---|---|---|---|---|---|---|---|---|", flush=True)
    missed = 0
    with tempfile.TemporaryDirectory() as out:
        for bug in bugs:
            profile = PROFILES[bug]
            base = base_settings(profile.workload, profile, [bug] if bug else [], 5, Path(out))
            budget = args.correct_budget if not bug else args.budget
            t0 = time.monotonic()
            r = hunt(base, profile, budget, args.shrink_budget, args.seed)
            name = bug or "(correct store)"
            if r.found is None:
                missed += bool(bug)
                print(f"| {name} | no | - | - | {r.examples} runs | - | - | - | "
                      f"{time.monotonic() - t0:.1f} |", flush=True)
                continue
            f = r.found
            print(f"| {name} | yes | {r.first_found_s:.1f} | {r.first_found_cpu_s:.1f} | "
                  f"{r.first_found_runs} | "
                  f"{len(f.scenario.faults)} | {f.operations} | {f.scenario.time_limit} | "
                  f"{time.monotonic() - t0:.1f} |", flush=True)
    return 1 if missed else 0




if __name__ == "__main__":
    sys.exit(main())
