"""How fast the linearizability checker is on generated histories.

    python benchmarks/checker_speed.py            # both cases, each in a fresh process
    python benchmarks/checker_speed.py --case register-100k

Cases (from issue 5):
- cas-register: 1 key, 20 processes, 5% info, 1,000 operations (Jepsen's value domain 0..4);
- register: 100 keys, 10 processes, 100,000 operations (targets: <= 10 s, <= 1 GB RSS).
Each case writes its history as history.jsonl to a temporary folder and times reading + pairing +
checking it (end to end) and the search alone; peak RSS is the child process's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkers.generate import corrupt_one_read, generate  # noqa: E402
from checkers.history import pair, read_history  # noqa: E402
from checkers.linearizability import Budget, check_linearizable  # noqa: E402

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
    # one read answers a value never written: the search must prove the key invalid
    "register-100k-corrupt": dict(model="register", n_ops=100_000, processes=10, keys=100,
                                  info_rate=0.05, corrupt=True),
}
DEFAULT = ["cas-register-1k", "register-100k", "register-100k-info", "register-100k-corrupt",
           "cas-register-1k-40p"]


def run_case(name: str, seed: int, time_limit: float) -> dict:
    spec = dict(CASES[name])
    corrupt = spec.pop("corrupt", False)
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
        verdict = check_linearizable(calls, spec["model"], Budget(seconds=time_limit))
        t2 = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    keys = verdict.evidence["keys"].values()
    return {
        "case": name, "ops": spec["n_ops"], "verdict": verdict.verdict,
        "read_s": round(t1 - t0, 3), "check_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "ops_per_s_check": round(spec["n_ops"] / max(t2 - t1, 1e-9)),
        "ops_per_s_total": round(spec["n_ops"] / max(t2 - t0, 1e-9)),
        "configurations": sum(k.get("configurations", 0) for k in keys),
        "peak_rss_mib": round(rss_kib / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=list(CASES), action="append")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    if args.case and len(args.case) == 1:
        print(json.dumps(run_case(args.case[0], args.seed, args.time_limit)))
        return
    print(f"{'case':22} {'ops':>7} {'verdict':8} {'read s':>7} {'check s':>8} {'total s':>8} "
          f"{'ops/s (check)':>14} {'ops/s (total)':>14} {'configs':>9} {'peak RSS MiB':>12}")
    for name in args.case or DEFAULT:
        # a fresh process per case, so each peak RSS is that case's own
        out = subprocess.run(
            [sys.executable, __file__, "--case", name, "--seed", str(args.seed),
             "--time-limit", str(args.time_limit)],
            capture_output=True, text=True, timeout=args.time_limit * 3 + 120,
        )
        if out.returncode != 0:
            print(f"{name}: failed: {out.stderr.strip()[-500:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['case']:22} {r['ops']:>7} {r['verdict']:8} {r['read_s']:>7} "
              f"{r['check_s']:>8} {r['total_s']:>8} {r['ops_per_s_check']:>14} "
              f"{r['ops_per_s_total']:>14} {r['configurations']:>9} {r['peak_rss_mib']:>12}")


if __name__ == "__main__":
    main()
