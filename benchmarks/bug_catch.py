"""How reliably, and how fast, the smoke suite's bug tests catch their bugs.

For every test of the suite that seeds a bug, run it RUNS times (seeds 1..RUNS) and print how many
runs caught the bug (met the test's expectation) and the median wall time from the start of a run
until a catching run finished. Target: 5 of 5 for every bug, each within 60 s.

    python benchmarks/bug_catch.py [--runs 5] [--suite suites/smoke.toml] [--only bug-lww]

Each run is bounded by the test's own timeout; the whole benchmark takes about
bugs x runs x 25 s (some 20 minutes for the full zoo).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.suite import load_suite, run_one, select  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "smoke.toml")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", action="append", default=[], help="test name or pattern")
    ap.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    args = ap.parse_args()
    suite = load_suite(args.suite)
    tests = [t for t in select(suite, args.only) if t.bugs]
    if not tests:
        print("no test seeds a bug", file=sys.stderr)
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="bug-catch-"))
    print(f"{len(tests)} bug tests x {args.runs} runs; run directories under {out}")
    print(f"{'bug':28} {'checker':18} {'caught':>7} {'median s':>9} {'max s':>7}  runs (s)")
    rows = []
    for t in tests:
        runs: list[tuple[float, bool]] = []
        for seed in range(1, args.runs + 1):
            o = run_one(t, out / f"seed-{seed}", seed=seed)
            runs.append((o.seconds, o.passed))
            if o.error:
                print(f"  {t.name} seed {seed}: {o.error}", file=sys.stderr)
        caught = [s for s, ok in runs if ok]
        median = statistics.median(caught) if caught else float("nan")
        worst = max(caught) if caught else float("nan")
        # "x" marks a run that missed the bug
        shown = " ".join(f"{s:.0f}" + ("" if ok else "x") for s, ok in runs)
        print(f"{','.join(t.bugs):28} {','.join(t.expect):18} {len(caught):>4}/{args.runs}"
              f" {median:>9.1f} {worst:>7.1f}  {shown}", flush=True)
        rows.append(len(caught) == args.runs and worst <= 60)
    print("target met for every bug" if all(rows) else "target NOT met for some bug")
    return 0 if all(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
