"""Render time and size of report.html for generated histories of 1k, 10k and 100k operations.

Run: python benchmarks/report_render.py [--sizes 1000,10000,100000]
Bounded: three renders per size at most; the generated runs live in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.report import render_run
from harness.report.synthetic import make_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=2, choices=range(1, 4))
    args = ap.parse_args()
    print(f"{'ops':>8} {'generate s':>11} {'render s (best)':>16} {'render s (worst)':>17} "
          f"{'report MiB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            t0 = time.perf_counter()
            run = make_run(Path(tmp) / f"run{n}", n, invalid=True, seed=n)
            gen = time.perf_counter() - t0
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = render_run(run)
                times.append(time.perf_counter() - t0)
            size = out.stat().st_size / 2**20
            print(f"{n:>8,} {gen:>11.2f} {min(times):>16.2f} {max(times):>17.2f} {size:>11.2f}")


if __name__ == "__main__":
    main()
