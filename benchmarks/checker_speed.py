"""How fast the linearizability checker is on generated histories.

    python benchmarks/checker_speed.py            # every case, each in a fresh process
    python benchmarks/checker_speed.py --case kv-50c --jobs 1

Cases:
- cas-register-1k: 1 key, 20 processes, 5% info, 1,000 operations (Jepsen's value domain 0..4);
  cas-register-1k-info: the same with 30% info operations (indeterminate: the hard part);
- register-100k: 100 keys, 10 processes, 100,000 operations (targets: <= 10 s, <= 1 GB RSS);
- kv-50c: Porcupine's kv shape, 10 keys, 50 clients, string put/append/get from "" (linearizable);
  kv-50c-corrupt: the same with one get answering a value nobody wrote (answered at the first
  invalid key, the default; `--all-keys` is what the other keys would cost).
Each case writes its history as history.jsonl to a temporary folder and times reading + pairing +
checking it (end to end) and the search alone, with one process and with `--jobs` (default: the
machine's cores); peak RSS is the child process's own. Then `harness check` start-up on a
trivial history (best of 5; target < 0.3 s).

Porcupine (Go) is the anchor for the kv cases' ratios: it is timed only where Go and Porcupine's
module are at hand, and otherwise the benchmark says why there is no ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkers.generate import corrupt_one_read, generate  # noqa: E402
from checkers.history import pair, read_history  # noqa: E402
from checkers.linearizability import Budget, Semantics, check_linearizable  # noqa: E402

CASES = {
    "cas-register-1k": dict(model="cas-register", n_ops=1000, processes=20, keys=1,
                            info_rate=0.05),
    "register-100k": dict(model="register", n_ops=100_000, processes=10, keys=100,
                          info_rate=0.0),
    # beyond the issue: the harder variants, for the record
    "register-100k-info": dict(model="register", n_ops=100_000, processes=10, keys=100,
                               info_rate=0.05),
    "cas-register-1k-40p": dict(model="cas-register", n_ops=1000, processes=40, keys=1,
                                info_rate=0.05),
    "cas-register-1k-info": dict(model="cas-register", n_ops=1000, processes=20, keys=1,
                                 info_rate=0.3),
    "kv-50c": dict(model="kv", n_ops=2000, processes=50, keys=10, strings=True, initial=""),
    "kv-50c-corrupt": dict(model="kv", n_ops=2000, processes=50, keys=10, strings=True,
                           initial="", corrupt=True),
    # one read answers a value never written: the search must prove the key invalid
    "register-100k-corrupt": dict(model="register", n_ops=100_000, processes=10, keys=100,
                                  info_rate=0.05, corrupt=True),
}
DEFAULT = ["cas-register-1k", "cas-register-1k-info", "cas-register-1k-40p", "register-100k",
           "register-100k-info", "register-100k-corrupt", "kv-50c", "kv-50c-corrupt"]


def run_case(name: str, seed: int, time_limit: float, jobs: int) -> dict:
    spec = dict(CASES[name])
    corrupt = spec.pop("corrupt", False)
    semantics = Semantics(initial=spec.pop("initial", None))
    ops = generate(seed=seed, **spec)
    if corrupt:
        ops = corrupt_one_read(ops, seed) or ops
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        with path.open("w") as fh:
            for op in ops:
                fh.write(json.dumps(op.to_dict(), separators=(",", ":")) + "\n")
        del ops
        t0 = time.perf_counter()
        calls, _ = pair(read_history(path))
        t1 = time.perf_counter()
        verdict = check_linearizable(calls, spec["model"], Budget(seconds=time_limit, jobs=jobs),
                                     semantics)
        t2 = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    keys = verdict.evidence["keys"].values()
    return {
        "case": name, "jobs": jobs, "ops": spec["n_ops"], "verdict": verdict.verdict,
        "read_s": round(t1 - t0, 3), "check_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "ops_per_s_check": round(spec["n_ops"] / max(t2 - t1, 1e-9)),
        "ops_per_s_total": round(spec["n_ops"] / max(t2 - t0, 1e-9)),
        "configurations": sum(k.get("configurations", 0) for k in keys),
        "peak_rss_mib": round(rss_kib / 1024, 1),
    }


def startup_seconds(repeats: int = 5) -> float:
    """Best wall time of `harness check` on a two-record history, in a fresh process each."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        path.write_text('{"index":0,"time":0,"process":0,"type":"invoke","f":"write","value":1}\n'
                        '{"index":1,"time":1,"process":0,"type":"ok","f":"write","value":1}\n')
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "harness", "check", str(path), "--model",
                            "register"], capture_output=True, check=True, cwd=ROOT)
            best = min(best, time.perf_counter() - t0)
    return best


def porcupine_note() -> str:
    """Why this run has no Porcupine figures (Porcupine is a Go library)."""
    if shutil.which("go") is None:
        return ("no Porcupine ratio: Porcupine is a Go library and this machine has no Go "
                "toolchain (apt's golang-go would do), nor its module (the Go module proxy is "
                "not reachable from here)")
    return ("no Porcupine ratio: Go is here, but Porcupine's module is not vendored and the "
            "Go module proxy is not reachable from here")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=list(CASES), action="append")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes for the second run of each case (default: the cores)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child's own run
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.case[0], args.seed, args.time_limit, args.jobs)))
        return
    print(f"{'case':22} {'jobs':>4} {'ops':>7} {'verdict':8} {'read s':>7} {'check s':>8} "
          f"{'total s':>8} {'ops/s (check)':>14} {'ops/s (total)':>14} {'configs':>9} "
          f"{'peak RSS MiB':>12}")
    for name in args.case or DEFAULT:
        for jobs in sorted({1, args.jobs}):
            # a fresh process per case, so each peak RSS is that case's own
            out = subprocess.run(
                [sys.executable, __file__, "--one", "--case", name, "--seed", str(args.seed),
                 "--time-limit", str(args.time_limit), "--jobs", str(jobs)],
                capture_output=True, text=True, timeout=args.time_limit * 3 + 120,
            )
            if out.returncode != 0:
                print(f"{name}: failed: {out.stderr.strip()[-500:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['case']:22} {r['jobs']:>4} {r['ops']:>7} {r['verdict']:8} "
                  f"{r['read_s']:>7} {r['check_s']:>8} {r['total_s']:>8} "
                  f"{r['ops_per_s_check']:>14} {r['ops_per_s_total']:>14} "
                  f"{r['configurations']:>9} {r['peak_rss_mib']:>12}", flush=True)
    print(f"\nharness check start-up (trivial history, best of 5): {startup_seconds():.3f} s "
          "(target < 0.3 s)")
    print(porcupine_note())


if __name__ == "__main__":
    main()
