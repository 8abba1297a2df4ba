"""What faultfs costs: SQLite commits and the whole store, on a plain directory and through it.

    python benchmarks/faultfs_throughput.py [--seconds 20] [--rate 1000] [--repeat 1]

1. SQLite alone, the node's pattern (WAL, synchronous=FULL, one row per transaction): commits
   per second for 3 s on a plain temporary directory, then through a faultfs mount.
2. The whole store: `harness run --workload cart --keys 50` with 5 nodes at an offered `rate`
   (closed to saturation by 20 clients), once with `--nemesis none` and once with
   `--nemesis power` whose interval is longer than the run (the mounts are there, no cut ever
   fires): acknowledged operations per second and their median latency, from the history.
Bounded: each run is killed after 180 s. Needs /dev/fuse, fuse3 and mfusepy.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.faultfs.mount import FaultMount, socket_path, unavailable  # noqa: E402

CLI = [sys.executable, "-m", "harness"]


def sqlite_commits(directory: Path, seconds: float = 3.0) -> float:
    conn = sqlite3.connect(directory / "bench.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)")
    blob = os.urandom(1000)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{n % 1000}", blob))
        n += 1
    conn.close()
    return n / (time.monotonic() - t0)


def run_rate(nemesis: list[str], seconds: float, rate: float) -> tuple[float, float]:
    """(acknowledged ops/s, median ok latency in ms) of one harness run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = dict(os.environ, HARNESS_STATE_DIR=str(out / "state"))
        subprocess.run(CLI + ["run", "--workload", "cart", "--keys", "50",
                              "--time-limit", str(seconds), "--rate", str(rate),
                              "--concurrency", "20", "--display", "quiet",
                              "--out", str(out), "--seed", "1", *nemesis],
                       env=env, timeout=180, capture_output=True)
        ops = [json.loads(x) for x in (out / "latest" / "history.jsonl").read_text().splitlines()]
    invokes = {}
    lat, oks = [], 0
    for o in ops:
        if o["process"] == "nemesis" or o.get("final"):
            continue
        if o["type"] == "invoke":
            invokes[o["process"]] = o["time"]
        elif o["type"] == "ok":
            oks += 1
            lat.append((o["time"] - invokes[o["process"]]) / 1e6)
    return oks / seconds, statistics.median(lat) if lat else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    why = unavailable()
    if why:
        print(f"skipped: {why}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain"
        plain.mkdir()
        print(f"sqlite commits/s, plain directory: {sqlite_commits(plain):8.0f}")
        with FaultMount(Path(tmp) / "mnt", Path(tmp) / "disk", socket_path("bench")) as m:
            print(f"sqlite commits/s, through faultfs: {sqlite_commits(m.mountpoint):8.0f}")
        m = FaultMount(Path(tmp) / "mnt2", Path(tmp) / "disk2", socket_path("bench"))
        m.argv_extra = ["--sync-backing"]
        with m:
            print(f"sqlite commits/s, faultfs --sync-backing: "
                  f"{sqlite_commits(m.mountpoint):8.0f}")
    for _ in range(args.repeat):
        for label, nemesis in (("none", ["--nemesis", "none"]),
                               ("faultfs", ["--nemesis", "power", "--nemesis-interval", "1000"])):
            ops, p50 = run_rate(nemesis, args.seconds, args.rate)
            print(f"store, 5 nodes, {label:8s}: {ops:7.0f} acknowledged ops/s, "
                  f"median {p50:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
