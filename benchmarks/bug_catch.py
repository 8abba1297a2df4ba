"""How reliably the smoke suite's verdicts hold, seed after seed, on a loaded machine.

Runs every test of a suite (the correct-store tests, every bug test and its control) RUNS times
with seeds FIRST..FIRST+RUNS-1 and prints, per test, how many runs met the test's expectation
(a bug test: its bug caught; a correct-store test or control: valid), with the median and the
longest wall time of a run. The gate's promise is RUNS of RUNS for every test (issue 11: 20 of 20).
FIRST is drawn at random unless `--first-seed` names it: CI runs the suite with fresh seeds, so
the benchmark must not keep measuring the same twenty (a rerun with the printed first seed
replays the same schedules).

    python benchmarks/bug_catch.py [--runs 20] [--jobs 2] [--hog 1] [--only 'bug-*']
    python benchmarks/bug_catch.py --as-user --runs 5 --jobs 2   # issue 14's measure

`--as-user` runs each test the way a user would type it, none of the suite's tuning:
`harness run --workload W --nemesis N --bug B --time-limit 30` (the test's store, workload,
nemesis, bugs and quorum flags; the `harness run` defaults for everything else: no node
settings, rotating keys, jittered 5 s fault periods, every partition shape). A bug test is then
met when any default checker says invalid, and a control or correct-store test when none does.

Load: measure it the way CI meets it, on a busy machine. `--jobs 2` runs two tests at once (each
a 5-node cluster plus its clients: one suite beside another), and `--hog K` adds K processes that
spin a CPU core for as long as the benchmark runs (they stop with it). On this 2-core machine
`--jobs 2 --hog 1` keeps both cores saturated. `--json FILE` writes every run's outcome.

Each run is bounded by its test's own timeout; the whole benchmark takes about
tests x runs x 30 s / jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.suite import Outcome, SuiteTest, expand, load_suite, run_one, select  # noqa: E402

# what a user's `harness run` line for a test keeps: what the store is and what it is asked to do
USER_KEYS = ("workload", "nemesis", "bugs", "store", "store_options", "nodes", "n", "r", "w",
             "sloppy")


def as_user(test: SuiteTest, time_limit: float) -> SuiteTest:
    """The test as a user would run it: its store, workload, nemesis and bugs, nothing tuned."""
    settings = {k: v for k, v in test.settings.items() if k in USER_KEYS}
    return dataclasses.replace(test, settings={**settings, "time_limit": time_limit})


def meets(test: SuiteTest, o: Outcome, user: bool) -> bool:
    """The suite's judgement; as a user: a bug caught by any checker, else no checker invalid."""
    if not user:
        return o.passed
    invalid = "invalid" in o.verdicts.values()
    return o.error is None and (invalid if test.bugs else not invalid)


def spin(deadline: float) -> None:
    """Keep one core busy until `deadline` (monotonic); the parent also stops it at the end."""
    while time.monotonic() < deadline:
        pass


def main() -> int:
    # --platform sim: the zoo hunted on the simulator instead (issue 15, benchmarks/sim_catch.py)
    if "--platform" in sys.argv[1:] or any(a.startswith("--platform=") for a in sys.argv[1:]):
        from sim_catch import main as sim_catch

        return sim_catch(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "smoke.toml")
    ap.add_argument("--runs", type=int, default=20, help="runs (seeds) per test (default 20)")
    ap.add_argument("--first-seed", type=int, default=None,
                    help="seeds FIRST..FIRST+RUNS-1 (default: FIRST drawn at random)")
    ap.add_argument("--jobs", type=int, default=1, help="tests run at once (default 1)")
    ap.add_argument("--hog", type=int, default=0, help="CPU-spinning processes beside the runs")
    ap.add_argument("--only", action="append", default=[], help="test name or pattern")
    ap.add_argument("--bugs-only", action="store_true", help="only the tests that seed a bug")
    ap.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--json", type=Path, default=None, help="write every run's outcome here")
    ap.add_argument("--as-user", action="store_true",
                    help="run each test as `harness run` with its defaults (see above)")
    ap.add_argument("--time-limit", type=float, default=30.0,
                    help="with --as-user: seconds of workload per run (default 30)")
    ap.add_argument("--max-hours", type=float, default=6.0,
                    help="stop the hogs after this long whatever happens (default 6)")
    args = ap.parse_args()
    tests = select(expand(load_suite(args.suite)), args.only)
    if args.bugs_only:
        tests = [t for t in tests if t.bugs]
    if args.as_user:
        tests = [as_user(t, args.time_limit) for t in tests]
    if not tests:
        print("no test selected", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="bug-catch-"))
    deadline = time.monotonic() + args.max_hours * 3600
    hogs = [multiprocessing.Process(target=spin, args=(deadline,), daemon=True)
            for _ in range(args.hog)]
    for h in hogs:
        h.start()
    first = args.first_seed if args.first_seed is not None else random.randrange(1, 2**31)
    print(f"{len(tests)} tests x {args.runs} runs (seeds {first}..{first + args.runs - 1}), "
          f"{args.jobs} at a time, {args.hog} CPU hog(s);"
          f" run directories under {out}", flush=True)
    runs: dict[str, list[dict]] = defaultdict(list)
    jobs = [(seed, t) for seed in range(first, first + args.runs) for t in tests]
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(run_one, t, out / f"seed-{seed}", seed): (seed, t)
                       for seed, t in jobs}
            for f in as_completed(futures):
                seed, t = futures[f]
                o = f.result()
                passed = meets(t, o, args.as_user)
                row = {"seed": seed, "passed": passed, "verdicts": o.verdicts,
                       "seconds": round(o.seconds, 1), "actual": o.actual, "error": o.error,
                       "run_dir": str(o.run_dir)}
                runs[t.name].append(row)
                mark = "ok  " if passed else "MISS"
                print(f"  {mark} {t.name} seed {seed}: {o.seconds:.0f} s {o.actual}"
                      + (f" ({o.error})" if o.error else ""), flush=True)
    finally:
        for h in hogs:
            h.terminate()
    print(f"\n{'test':34} {'expects':34} {'met':>6} {'median s':>9} {'max s':>7}")
    all_met = True
    for t in tests:
        rs = runs[t.name]
        met = sum(r["passed"] for r in rs)
        secs = [r["seconds"] for r in rs]
        expects = ",".join(f"{c}={'|'.join(v)}" for c, v in t.expect.items()) or "valid"
        if args.as_user:
            expects = "any checker invalid" if t.bugs else "no checker invalid"
        print(f"{t.name:34} {expects[:34]:34} {met:>3}/{len(rs):<2} "
              f"{statistics.median(secs):>9.1f} {max(secs):>7.1f}")
        all_met &= met == len(rs)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    print("every test met its expectation in every run" if all_met
          else "some test missed its expectation")
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
