"""Store throughput and latency: 3 local nodes, N=3, R=W=2, 50/50 GET/PUT of ~1 KB values.

    python benchmarks/store_throughput.py [--seconds 10] [--concurrency 48] [--rate 500]
                                          [--anti-entropy on|off]

Phase 1 (saturation): closed loop, `concurrency` keep-alive connections spread over the nodes.
Phase 2 (offered load): open loop at `rate` ops/s; each latency is measured from the operation's
scheduled start, so a stall counts against every operation it delays (no coordinated omission).
Each PUT carries the context of the last read or write of its key, as a real client would, so
sibling sets stay small. The load generator speaks HTTP/1.1 over raw asyncio streams to keep its
own CPU cost low: this machine has 2 cores, shared by the generator and the three nodes.
Targets: >= 2,000 ops/s at saturation; p99.9 <= 30 ms at 500 ops/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodeproc import LocalCluster  # noqa: E402

KEYS = 1000


class Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Workload:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.contexts: dict[str, str | None] = {}
        self.payload = "x" * 1000
        self.errors: dict[str, int] = {}

    async def one(self, conn: Conn) -> None:
        key = f"k{self.rng.randrange(KEYS)}"
        if self.rng.random() < 0.5:
            status, body = await conn.request("GET", f"/kv/{key}")
            if status in (200, 404):
                self.contexts[key] = json.loads(body)["context"]
        else:
            doc = {"value": {"v": self.payload, "n": self.rng.random()},
                   "context": self.contexts.get(key)}
            status, body = await conn.request("PUT", f"/kv/{key}", json.dumps(doc).encode())
            if status == 200:
                self.contexts[key] = json.loads(body)["context"]
        if status not in (200, 404):
            name = str(status)
            self.errors[name] = self.errors.get(name, 0) + 1


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def summary(name: str, latencies: list[float], seconds: float, errors: dict[str, int]) -> dict:
    lat = sorted(latencies)
    out = {"phase": name, "ops": len(lat), "seconds": round(seconds, 2),
           "ops_per_s": round(len(lat) / seconds, 1),
           "p50_ms": round(percentile(lat, 50) * 1000, 2),
           "p99_ms": round(percentile(lat, 99) * 1000, 2),
           "p999_ms": round(percentile(lat, 99.9) * 1000, 2),
           "max_ms": round((lat[-1] if lat else float("nan")) * 1000, 2),
           "errors": errors}
    return out


async def saturate(addrs: list[tuple[str, int]], concurrency: int, seconds: float,
                   work: Workload) -> dict:
    conns = [Conn(*addrs[i % len(addrs)]) for i in range(concurrency)]
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def loop(conn: Conn) -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await work.one(conn)
            latencies.append(time.perf_counter() - t0)

    work.errors = {}
    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return summary(f"saturation ({concurrency} connections)", latencies, elapsed, work.errors)


async def offered(addrs: list[tuple[str, int]], rate: float, seconds: float,
                  work: Workload) -> dict:
    idle: list[Conn] = [Conn(*addrs[i % len(addrs)]) for i in range(64)]
    latencies: list[float] = []
    tasks: set[asyncio.Task] = set()
    work.errors = {}

    async def fire(scheduled: float) -> None:
        conn = idle.pop() if idle else Conn(*addrs[len(latencies) % len(addrs)])
        try:
            await work.one(conn)
        finally:
            idle.append(conn)
        latencies.append(time.perf_counter() - scheduled)

    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(fire(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    elapsed = time.perf_counter() - start
    for c in idle:
        c.close()
    return summary(f"offered {rate:g} ops/s", latencies, elapsed, work.errors)


async def preload(addrs: list[tuple[str, int]], work: Workload) -> None:
    conns = [Conn(*addrs[i % len(addrs)]) for i in range(16)]

    async def load(i: int) -> None:
        for k in range(i, KEYS, len(conns)):
            doc = {"value": {"v": work.payload}, "context": None}
            status, body = await conns[i].request("PUT", f"/kv/k{k}", json.dumps(doc).encode())
            if status != 200:
                raise RuntimeError(f"preload failed: {status} {body[:200]!r}")
            work.contexts[f"k{k}"] = json.loads(body)["context"]

    await asyncio.gather(*(load(i) for i in range(len(conns))))
    for c in conns:
        c.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument("--concurrency", type=int, default=48, help="connections at saturation")
    p.add_argument("--rate", type=float, default=500.0, help="offered ops/s in phase 2")
    p.add_argument("--fsync", default="always", choices=["always", "os", "none"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="the nodes' event loop (auto: uvloop if installed)")
    p.add_argument("--anti-entropy", default="on", choices=["on", "off"],
                   help="Merkle trees kept current on the write path and exchanged (default on)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp, \
            LocalCluster(Path(tmp), size=3, node_args=("--loop", args.loop), n=3, r=2, w=2,
                         fsync=args.fsync, request_timeout_ms=2000,
                         anti_entropy=args.anti_entropy == "on") as cluster:
        cluster.start_all()
        addrs = [(cluster.hosts[n], cluster.client_ports[n]) for n in cluster.ids]
        work = Workload(random.Random(args.seed))
        print(f"3 nodes, N=3 R=2 W=2, fsync={args.fsync}, loop={args.loop}, {KEYS} keys, "
              f"~1 KB values, 50/50 GET/PUT, anti-entropy {args.anti_entropy}, "
              f"{os.cpu_count()} cores, "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        t0 = time.perf_counter()
        asyncio.run(preload(addrs, work))
        print(f"preloaded {KEYS} keys in {time.perf_counter() - t0:.1f} s", flush=True)
        procs = [psutil.Process(cluster.procs[n].pid) for n in cluster.ids]
        me = psutil.Process()
        phases = [lambda: saturate(addrs, args.concurrency, args.seconds, work),
                  lambda: offered(addrs, args.rate, args.seconds, work)]
        results = []
        for phase in phases:
            before = [cpu(p) for p in procs], cpu(me)
            r = asyncio.run(phase())
            nodes_cpu = sum(cpu(p) for p in procs) - sum(before[0])
            r["node_cpu_ms_per_op"] = round(nodes_cpu / max(r["ops"], 1) * 1000, 3)
            r["generator_cpu_ms_per_op"] = round((cpu(me) - before[1]) / max(r["ops"], 1) * 1000, 3)
            results.append(r)
        load = os.getloadavg()[0]
        for r in results:
            print(f"{r['phase']:>32}: {r['ops_per_s']:8.1f} ops/s  p50 {r['p50_ms']:6.2f} ms  "
                  f"p99 {r['p99_ms']:6.2f} ms  p99.9 {r['p999_ms']:6.2f} ms  "
                  f"max {r['max_ms']:6.2f} ms  ({r['ops']} ops, errors {r['errors'] or 'none'})")
            print(f"{'':>32}  CPU per op: nodes {r['node_cpu_ms_per_op']:.3f} ms, "
                  f"load generator {r['generator_cpu_ms_per_op']:.3f} ms")
        print(f"machine load average during the run: {load:.2f} (on {os.cpu_count()} cores)")
        slow = sum((cluster.workdir / f"{n}.log").read_text(errors="replace").count("took")
                   for n in cluster.ids)
        print(f"commits slower than 100 ms in the nodes' logs: {slow}")
        sat, off = results
        print(json.dumps({"saturation_ops_per_s": sat["ops_per_s"],
                          "offered_p999_ms": off["p999_ms"],
                          "target_saturation_met": sat["ops_per_s"] >= 2000,
                          "target_p999_met": off["p999_ms"] <= 30}))


if __name__ == "__main__":
    main()
