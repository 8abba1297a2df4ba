"""How fast the harness drives and records a 3-node local cluster, and how long a run takes.

    python benchmarks/harness_overhead.py [--seconds 8]

Prints:
1. the highest rate recorded: ops/s completed and written to history.jsonl per second (median
   and best second), with the rate limit off and 32 client processes;
2. the same under libfaketime with no skew (the clock nemesis's cost on the nodes);
3. the wall time from the command to the report for a 10 s test (target: at most 15 s),
   with the run's own phase timings.

Everything runs in temporary folders with its own state directory; every cluster is torn down by
the harness itself. Bounded: about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkers.history import read_jsonl  # noqa: E402

CLI = [sys.executable, "-m", "harness"]


def harness_run(out: Path, env: dict[str, str], args: list[str]) -> tuple[float, Path, int]:
    t0 = time.monotonic()
    proc = subprocess.run(CLI + ["run", "--out", str(out), "--display", "quiet", "--nodes", "3",
                                 "--seed", "1", *args],
                          env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    run_dir = (out / "latest").resolve()
    if not (run_dir / "history.jsonl").exists():
        sys.exit(f"run failed:\n{proc.stdout}\n{proc.stderr}")
    return took, run_dir, proc.returncode


def per_second(run_dir: Path) -> tuple[list[int], Counter]:
    """Completed client operations per whole second of the workload phase."""
    buckets: Counter = Counter()
    kinds: Counter = Counter()
    start = None
    for op in read_jsonl(run_dir / "history.jsonl"):
        if op.is_nemesis or op.final:
            continue
        if start is None:
            start = op.time
        if op.type != "invoke":
            buckets[(op.time - start) // 1_000_000_000] += 1
            kinds[op.type] += 1
    seconds = sorted(buckets)[1:-1]  # drop the partial first and last seconds
    return [buckets[s] for s in seconds], kinds


def max_rate(label: str, out: Path, env: dict[str, str], seconds: float,
             extra: list[str]) -> None:
    took, run_dir, _ = harness_run(out, env, ["--rate", "1000000", "--concurrency", "32",
                                              "--time-limit", str(seconds),
                                              "--quiesce-timeout", "5", *extra])
    rates, kinds = per_second(run_dir)
    if not rates:
        print(f"{label}: too short to measure")
        return
    print(f"{label}: median {statistics.median(rates):.0f} ops/s, best second {max(rates)} "
          f"ops/s, {dict(kinds)} (run took {took:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="workload seconds per rate run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        env = dict(os.environ, HARNESS_STATE_DIR=str(Path(tmp) / "state"))
        out = Path(tmp) / "reports"
        print(f"machine: {os.cpu_count()} cores (shared; figures are noisy)")
        max_rate("max recorded rate, cart, 3 nodes, 32 clients", out, env, args.seconds, [])
        # an interval longer than the test: nodes run under libfaketime but no skew is injected
        max_rate("same, nodes under libfaketime (no skew)", out, env, args.seconds,
                 ["--nemesis", "clock", "--nemesis-interval", "1000"])
        took, run_dir, code = harness_run(out, env, ["--time-limit", "10"])
        timings = json.loads((run_dir / "test.json").read_text()).get("timings", {})
        report = (run_dir / "report.html").exists()
        verdict = "target met" if took <= 15 else "target missed"
        print(f"10 s test, command to report: {took:.1f} s ({verdict}: <= 15 s); exit {code}; "
              f"report.html {'written' if report else 'missing'}")
        print(f"  phases: {json.dumps(timings)}")


if __name__ == "__main__":
    main()
