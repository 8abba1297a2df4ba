"""Store throughput, latency and CPU per operation: each store driven the same way, side by side.

    python benchmarks/store_throughput.py [--store dynamo,etcd,redis,floor] [--rounds 2]
                                          [--seconds 10] [--concurrency 48] [--rate 500]
                                          [--json FILE]

Every store runs as the harness runs it: 3 nodes on loopback (127.0.0.2-4) started by the local
platform with the store (`harness.stores`), spoken to through the store's own client
(`Store.client(...).get/put`), so the load generator costs the same for each. The workload:
1,000 keys preloaded, ~1 KB values, 50/50 reads and writes, every acknowledged write fsynced:

- dynamo: N=3 R=2 W=2, `fsync = "always"` (group commit); each write carries the context of the
  last read or write of its key, as a real client would, so sibling sets stay small;
- etcd: Raft over 3 members; etcd fsyncs its WAL before it acknowledges (its default); reads
  are linearizable (etcd's default);
- redis: a primary and 2 replicas with Sentinel, as `stores/redis.py` lays them out, plus
  `appendonly yes` / `appendfsync always` on every node (benchmark-only, `--fsync`); writes go
  to the primary, and so do reads by default (`--redis-reads primary`: the only node that
  answers with the latest acknowledged write; `spread` reads from each connection's own node,
  replicas included, possibly stale). Redis acknowledges before any replica has the write.

Phase 1 (saturation): closed loop, `concurrency` keep-alive connections spread over the 3 nodes.
Phase 2 (offered load): open loop at `rate` ops/s; each latency is measured from the operation's
scheduled start, so a stall counts against every operation it delays (no coordinated omission).
The generator's own garbage collector is off during each phase (collected before and after):
its full collections stalled every operation in flight for ~14 ms, whichever store was measured.
Server CPU per operation is the user+sys CPU of every process the platform started for the store
(the nodes and their sidecars: Redis's sentinels), over the phase's operations; at the offered
rate it includes each store's background work (gossip, anti-entropy, heartbeats, sentinels)
spread over fewer operations. The load generator's CPU per operation is printed beside it: it is
the store client's (aiohttp for dynamo and etcd, raw RESP for Redis) and shares the machine.

`--store floor` adds the benchmark's own reference, not a store: `floor_server.py`, three
processes answering the reference node's client API on the node's own HTTP server
(node/http_server.py, uvloop) with no replication, each write appended to a file and fdatasynced
(group commit) before its answer. Its figures are what this machine and this load generator
allow a store that keeps every acknowledged write on disk; with etcd also measured, the targets
are compared with them (`target_p999_under_floor`: the p99.9 target is below the floor's own
p99.9).

Stores take turns (dynamo, etcd, redis, dynamo, etcd, redis... for `--rounds`), each on a fresh
cluster, so machine noise falls on all alike; the 1-minute load average is printed for each run.
The summary is the median over rounds, with the ratio of the reference dynamo store to each other.
Targets for dynamo (issue 18), when etcd was measured in the same invocation: saturation ops/s
>= 1.35x etcd's, and p99.9 at the offered rate <= 0.5x etcd's. Without etcd, the older absolute
ones: >= 2,000 ops/s at saturation; p99.9 <= 30 ms at 500 ops/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.client import (  # noqa: E402
    Client,
    NodeClient,
    OpFailed,
    OpUnknown,
    client_session,
)
from harness.platforms.base import NodeSpec  # noqa: E402
from harness.platforms.local import LocalPlatform  # noqa: E402
from harness.settings import ClusterSettings  # noqa: E402
from harness.state import Session, matching_process  # noqa: E402
from harness.stores import STORES, Roles, Store, make_store  # noqa: E402
from harness.stores.dynamo import DynamoStore  # noqa: E402
from harness.stores.redis import RedisStore  # noqa: E402

KEYS = 1000
NODES = 3
DEFAULT_STORES = ("dynamo", "etcd")
OURS = "dynamo"
FLOOR = "floor"  # not a store of the harness: the benchmark's own reference (FloorStore)
FLOOR_SERVER = Path(__file__).resolve().parent / "floor_server.py"
CLIENT_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0
# what to count in each store's node logs: signs of a stall (a slow fsync, an election)
LOG_SIGNS = {
    "dynamo": {"commits slower than 100 ms": "took"},
    "etcd": {"leaders elected (1: the first)": "became leader at term",
             "slow WAL fdatasyncs (> 1 s)": "slow fdatasync",
             "requests that took too long": "took too long"},
}
REDIS_FSYNC = {"always": ["appendonly yes", "appendfsync always"],
               "os": ["appendonly yes", "appendfsync everysec"],
               "none": ["appendonly no"]}


# -- the stores as the benchmark configures them -----------------------------------------------

class BenchDynamo(DynamoStore):
    """The reference store, with the node's event loop chosen by `--loop`."""

    def __init__(self, cluster: ClusterSettings, loop: str) -> None:
        super().__init__(cluster)
        self.loop = loop

    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        return [*super().command(spec, root), "--loop", self.loop]


class DurableRedis(RedisStore):
    """Redis as `stores/redis.py` lays it out, with the append-only file fsynced per `--fsync`
    (later lines of redis.conf override earlier ones)."""

    def __init__(self, cluster: ClusterSettings, fsync: str) -> None:
        super().__init__(cluster)
        self.fsync = fsync

    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        super().layout(root, specs)
        for s in specs:
            with (root / s.id / "redis.conf").open("a", encoding="utf-8") as conf:
                conf.write("\n".join(REDIS_FSYNC[self.fsync]) + "\n")


class BenchPlatform(LocalPlatform):
    """The local platform without the iptables chains it sets up as root for partitions of an
    outside store: a benchmark makes no partitions, and every store then sends its packets the
    same way (the reference store never gets them)."""

    def _uses_loopback_filter(self) -> bool:
        return False


class FloorStore(Store):
    """The floor (`floor_server.py`): the reference node's client API on the same HTTP server,
    with no replication; each write appended to a file and fdatasynced (group commit) before
    its answer. What this machine and this load generator allow any durable store."""

    name = FLOOR
    client_class = NodeClient
    ready_probe = "GET /health"

    def layout(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        for s in specs:
            (root / s.id).mkdir(parents=True, exist_ok=True)

    def command(self, spec: NodeSpec, root: Path) -> list[str]:
        return [sys.executable, str(FLOOR_SERVER), "--host", spec.host,
                "--port", str(spec.client_port), "--data", str(root / spec.id / "floor.log")]

    def is_ready(self, spec: NodeSpec) -> bool:
        try:
            return requests.get(f"{spec.url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False


def make_bench_store(name: str, args: argparse.Namespace) -> Store:
    if name == FLOOR:
        return FloorStore(ClusterSettings(nodes=NODES))
    if name == "dynamo":
        node_settings: dict = {} if args.anti_entropy == "on" else {"anti_entropy": False}
        if args.auth == "off":  # internode frames unauthenticated, contexts unsigned
            node_settings["insecure"] = True
        cluster = ClusterSettings(nodes=NODES, n=3, r=2, w=2, request_timeout_ms=2000,
                                  fsync=args.fsync, node_settings=node_settings)
        return BenchDynamo(cluster, args.loop)
    cluster = ClusterSettings(nodes=NODES)
    if name == "redis":
        return DurableRedis(cluster, args.fsync)
    return make_store(name, cluster)


def store_setup(name: str, args: argparse.Namespace) -> str:
    return {
        "dynamo": f"N=3 R=2 W=2, fsync={args.fsync}, loop={args.loop}, "
                  f"anti-entropy {args.anti_entropy}",
        FLOOR: "no replication, values in memory, each write appended and fdatasynced "
               "(group commit): the least a durable store does, on the same HTTP server",
        "etcd": "Raft, WAL fsynced before each acknowledgement (etcd's default), "
                "linearizable reads",
        "redis": f"primary + 2 async replicas + 3 sentinels, {' / '.join(REDIS_FSYNC[args.fsync])}"
                 f" on every node, writes to the primary, reads "
                 f"{'to the primary' if args.redis_reads == 'primary' else 'to every node'}",
    }[name]


# -- the load ----------------------------------------------------------------------------------

@dataclass
class Slot:
    """One client connection as a worker holds it: the client it reads with and the one it
    writes with (the same one, except for reads spread over a primary's replicas)."""

    reader: Client
    writer: Client
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    async def close(self) -> None:
        for c in {id(self.reader): self.reader, id(self.writer): self.writer}.values():
            await c.close()
        for s in self.sessions:
            await s.close()


class Target:
    """A running cluster as the load generator sees it: where each slot connects."""

    def __init__(self, store: Store, urls: dict[str, str], primary: str | None,
                 primary_reads: bool) -> None:
        self.store, self.urls, self.primary = store, urls, primary
        self.primary_reads = primary_reads
        self.nodes = list(urls)
        self.opened = 0

    def slot(self) -> Slot:
        """The next connection, round-robin over the nodes (writes to the primary, if any)."""
        node = self.nodes[self.opened % len(self.nodes)]
        self.opened += 1
        sessions: list[aiohttp.ClientSession] = []

        def client(at: str) -> Client:
            session = client_session(connector=aiohttp.TCPConnector(limit=1))
            sessions.append(session)
            return self.store.client(session, at, self.urls[at], CLIENT_TIMEOUT_S)

        if self.primary is None:
            c = client(node)
            return Slot(c, c, sessions)
        writer = client(self.primary)
        reader = writer if self.primary_reads or node == self.primary else client(node)
        return Slot(reader, writer, sessions)


class Workload:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.contexts: dict[str, str | None] = {}
        self.payload = "x" * 1000
        self.errors: dict[str, int] = {}
        self.ok = 0

    async def one(self, slot: Slot) -> None:
        key = f"k{self.rng.randrange(KEYS)}"
        try:
            if self.rng.random() < 0.5:
                reply = await slot.reader.get(key)
            else:
                value = {"v": self.payload, "n": self.rng.random()}
                reply = await slot.writer.put(key, value, self.contexts.get(key))
        except (OpFailed, OpUnknown) as e:
            name = f"{'fail' if isinstance(e, OpFailed) else 'info'}: {str(e)[:60]}"
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        self.ok += 1
        if reply.context is not None:
            self.contexts[key] = reply.context


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def summary(name: str, latencies: list[float], seconds: float, work: Workload) -> dict[str, Any]:
    lat = sorted(latencies)
    return {"phase": name, "ops": len(lat), "ok": work.ok, "seconds": round(seconds, 2),
            "ops_per_s": round(work.ok / seconds, 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "p999_ms": round(percentile(lat, 99.9) * 1000, 2),
            "max_ms": round((lat[-1] if lat else float("nan")) * 1000, 2),
            "errors": dict(work.errors)}


async def saturate(target: Target, concurrency: int, seconds: float,
                   work: Workload) -> dict[str, Any]:
    slots = [target.slot() for _ in range(concurrency)]
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def loop(slot: Slot) -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await work.one(slot)
            latencies.append(time.perf_counter() - t0)

    work.errors, work.ok = {}, 0
    start = time.perf_counter()
    try:
        await asyncio.gather(*(loop(s) for s in slots))
    finally:
        elapsed = time.perf_counter() - start
        for s in slots:
            await s.close()
    return summary(f"saturation ({concurrency} conns)", latencies, elapsed, work)


async def offered(target: Target, rate: float, seconds: float, work: Workload) -> dict[str, Any]:
    idle = deque(target.slot() for _ in range(64))  # taken in turn: every node gets its share
    opened = list(idle)
    latencies: list[float] = []
    tasks: set[asyncio.Task] = set()
    work.errors, work.ok = {}, 0

    async def fire(scheduled: float) -> None:
        if idle:
            slot = idle.popleft()
        else:
            slot = target.slot()
            opened.append(slot)
        try:
            await work.one(slot)
        finally:
            idle.append(slot)
        latencies.append(time.perf_counter() - scheduled)

    start = time.perf_counter()
    total = int(rate * seconds)
    try:
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(fire(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        elapsed = time.perf_counter() - start
        for s in opened:
            await s.close()
    return summary(f"offered {rate:g} ops/s", latencies, elapsed, work)


async def preload(target: Target, work: Workload) -> None:
    slots = [target.slot() for _ in range(16)]

    async def load(i: int) -> None:
        for k in range(i, KEYS, len(slots)):
            reply = await slots[i].writer.put(f"k{k}", {"v": work.payload}, None)
            work.contexts[f"k{k}"] = reply.context

    try:
        await asyncio.gather(*(load(i) for i in range(len(slots))))
    finally:
        for s in slots:
            await s.close()


# -- one store, one round ----------------------------------------------------------------------

def cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def run_loop(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run one coroutine on the load generator's event loop (uvloop when installed)."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


@contextlib.contextmanager
def generator_gc_paused() -> Iterator[None]:
    """The load generator's garbage collector off for a phase: a full collection of its heap
    took ~14 ms, which every operation in flight waited for, and so set the p99.9 of whichever
    store's phase it fell in (any store's). Collected before and after instead."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def wait_settled(store: Store, specs: Sequence[NodeSpec]) -> None:
    """Until the store says it has settled (Redis: replicas linked and caught up); bounded."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not store.settled(specs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {store.name} cluster did not settle in {SETTLE_TIMEOUT_S} s")
        time.sleep(0.2)


def measure(name: str, args: argparse.Namespace, seed: str) -> dict[str, Any]:
    """Start a fresh 3-node cluster of the store, preload, run both phases, tear it down."""
    store = make_bench_store(name, args)
    with tempfile.TemporaryDirectory(prefix=f"store-bench-{name}-") as tmp:
        session = Session.create("run", Path(tmp))
        platform = BenchPlatform(Path(tmp) / "nodes", store.cluster, session, store=store)
        try:
            t0 = time.perf_counter()
            platform.start()
            wait_settled(store, platform.specs)
            started_s = time.perf_counter() - t0
            primary = (store.holder("primary", platform.specs) or platform.specs[0].id
                       if isinstance(store, Roles) and "primary" in store.roles else None)
            urls = {n: platform.client_url(n) for n in platform.node_ids()}
            target = Target(store, urls, primary, args.redis_reads == "primary")
            work = Workload(random.Random(seed))
            t0 = time.perf_counter()
            run_loop(lambda: preload(target, work))
            preload_s = time.perf_counter() - t0
            procs = [p for p in (matching_process(i) for i in session.nodes.values())
                     if p is not None]
            me = psutil.Process()
            phases = [lambda: saturate(target, args.concurrency, args.seconds, work),
                      lambda: offered(target, args.rate, args.seconds, work)]
            results = []
            for phase in phases:
                before, mine = [cpu(p) for p in procs], cpu(me)
                with generator_gc_paused():
                    r = run_loop(phase)
                server = sum(cpu(p) for p in procs) - sum(before)
                r["server_cpu_ms_per_op"] = round(server / max(r["ops"], 1) * 1000, 3)
                r["generator_cpu_ms_per_op"] = round((cpu(me) - mine) / max(r["ops"], 1) * 1000,
                                                     3)
                r["load1"] = round(os.getloadavg()[0], 2)
                results.append(r)
            logs = [platform.log_path(n).read_text(errors="replace") for n in platform.node_ids()]
            signs = {what: sum(log.count(text) for log in logs)
                     for what, text in LOG_SIGNS.get(name, {}).items()}
        finally:
            try:
                platform.stop()
            finally:
                session.remove()
    return {"store": name, "version": store.version(), "setup": store_setup(name, args),
            "server_processes": len(procs), "start_s": round(started_s, 2),
            "preload_s": round(preload_s, 2), "saturation": results[0], "offered": results[1],
            "log_signs": signs}


# -- output ------------------------------------------------------------------------------------

HEADER = (f"{'store':<7} {'phase':<24} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
          f"{'max ms':>7} {'srv CPU ms/op':>13} {'gen CPU ms/op':>13} {'load1':>5}  errors")


def row(store: str, r: dict[str, Any]) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in r["errors"].items()) or "none"
    return (f"{store:<7} {r['phase']:<24} {r['ops_per_s']:8.1f} {r['p50_ms']:7.2f} "
            f"{r['p99_ms']:7.2f} {r['p999_ms']:8.2f} {r['max_ms']:7.2f} "
            f"{r['server_cpu_ms_per_op']:13.3f} {r['generator_cpu_ms_per_op']:13.3f} "
            f"{r['load1']:5.2f}  {errors}")


def summarize(runs: list[dict[str, Any]], stores: list[str]) -> dict[str, Any]:
    """Median over rounds of each store's figures, and ours over each other store's."""
    med: dict[str, dict[str, float]] = {}
    for name in stores:
        mine = [r for r in runs if r["store"] == name]
        med[name] = {k: round(v, 3) for k, v in {
            "saturation_ops_per_s": statistics.median(r["saturation"]["ops_per_s"] for r in mine),
            "saturation_cpu_ms_per_op": statistics.median(
                r["saturation"]["server_cpu_ms_per_op"] for r in mine),
            "offered_p50_ms": statistics.median(r["offered"]["p50_ms"] for r in mine),
            "offered_p99_ms": statistics.median(r["offered"]["p99_ms"] for r in mine),
            "offered_p999_ms": statistics.median(r["offered"]["p999_ms"] for r in mine),
            "offered_cpu_ms_per_op": statistics.median(
                r["offered"]["server_cpu_ms_per_op"] for r in mine),
            "load1": statistics.median(r["saturation"]["load1"] for r in mine),
        }.items()}
    ratios: dict[str, dict[str, float]] = {}
    if OURS in med:
        ours = med[OURS]
        for name in stores:
            if name == OURS:
                continue
            other = med[name]
            ratios[name] = {k: round(ours[k] / other[k], 2) if other[k] else float("nan")
                            for k in ("saturation_ops_per_s", "saturation_cpu_ms_per_op",
                                      "offered_cpu_ms_per_op", "offered_p999_ms")}
    return {"median": med, "ours_over": ratios}


def print_summary(summ: dict[str, Any], rounds: int) -> None:
    print(f"\nsummary (median of {rounds} round{'s' if rounds != 1 else ''})")
    print(f"{'store':<7} {'sat ops/s':>9} {'sat CPU ms/op':>13} {'500/s p50':>9} "
          f"{'p99':>7} {'p99.9':>7} {'500/s CPU ms/op':>15} {'load1':>5}")
    for name, m in summ["median"].items():
        print(f"{name:<7} {m['saturation_ops_per_s']:9.1f} {m['saturation_cpu_ms_per_op']:13.3f} "
              f"{m['offered_p50_ms']:9.2f} {m['offered_p99_ms']:7.2f} {m['offered_p999_ms']:7.2f} "
              f"{m['offered_cpu_ms_per_op']:15.3f} {m['load1']:5.2f}")
    for name, r in summ["ours_over"].items():
        print(f"{OURS} / {name}: ops/s x{r['saturation_ops_per_s']:.2f}, "
              f"CPU/op x{r['saturation_cpu_ms_per_op']:.2f} at saturation "
              f"(x{r['offered_cpu_ms_per_op']:.2f} at the offered rate), "
              f"p99.9 x{r['offered_p999_ms']:.2f} at the offered rate "
              "(ops/s above 1: ours faster; CPU/op and p99.9 above 1: ours costlier/slower)")


# issue 18: ours over etcd, measured side by side
TARGET_OPS_OVER_ETCD = 1.35
TARGET_P999_OVER_ETCD = 0.5
# without etcd in the invocation: the absolute targets from before
TARGET_OPS = 2000
TARGET_P999_MS = 30


def targets(summ: dict[str, Any]) -> dict[str, Any]:
    """Whether our store met its targets: relative to etcd when etcd was measured (issue 18),
    else the absolute ones."""
    ours = summ["median"][OURS]
    out: dict[str, Any] = {"saturation_ops_per_s": ours["saturation_ops_per_s"],
                           "offered_p999_ms": ours["offered_p999_ms"]}
    etcd = summ["median"].get("etcd")
    if etcd is not None:
        need_ops = TARGET_OPS_OVER_ETCD * etcd["saturation_ops_per_s"]
        need_p999 = TARGET_P999_OVER_ETCD * etcd["offered_p999_ms"]
        out.update({"against": "etcd",
                    "target_saturation_ops_per_s": round(need_ops, 1),
                    "target_offered_p999_ms": round(need_p999, 2),
                    "target_saturation_met": ours["saturation_ops_per_s"] >= need_ops,
                    "target_p999_met": ours["offered_p999_ms"] <= need_p999})
        floor = summ["median"].get(FLOOR)
        if floor is not None:
            # a target under the floor's figure asks more than any durable store gets here
            out.update({"floor_saturation_ops_per_s": floor["saturation_ops_per_s"],
                        "floor_offered_p999_ms": floor["offered_p999_ms"],
                        "target_saturation_over_floor": need_ops > floor["saturation_ops_per_s"],
                        "target_p999_under_floor": need_p999 < floor["offered_p999_ms"]})
    else:
        out.update({"against": "absolute",
                    "target_saturation_ops_per_s": TARGET_OPS,
                    "target_offered_p999_ms": TARGET_P999_MS,
                    "target_saturation_met": ours["saturation_ops_per_s"] >= TARGET_OPS,
                    "target_p999_met": ours["offered_p999_ms"] <= TARGET_P999_MS})
    return out


def parse_stores(values: Sequence[str] | None) -> list[str]:
    names = [n.strip() for v in (values or [",".join(DEFAULT_STORES)]) for n in v.split(",")]
    names = list(dict.fromkeys(n for n in names if n))
    for n in names:
        if n == FLOOR:
            continue
        if n not in STORES:
            raise SystemExit(f"--store {n!r}: choose from {', '.join([*STORES, FLOOR])}")
        missing = STORES[n].missing()
        if missing:
            raise SystemExit(f"--store {n}: {missing}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", action="append", metavar="NAME[,NAME...]",
                   help=f"stores to measure, repeatable or a comma list: {', '.join(STORES)}, "
                        f"or {FLOOR} (the benchmark's reference server, not a store) "
                        f"(default: {','.join(DEFAULT_STORES)})")
    p.add_argument("--rounds", type=int, default=2, help="each store measured this many times, "
                   "in turn (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument("--concurrency", type=int, default=48, help="connections at saturation")
    p.add_argument("--rate", type=float, default=500.0, help="offered ops/s in phase 2")
    p.add_argument("--fsync", default="always", choices=["always", "os", "none"],
                   help="dynamo's fsync policy and Redis's appendfsync (always / everysec / no "
                        "AOF); etcd always fsyncs its WAL")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="the dynamo nodes' event loop (auto: uvloop if installed)")
    p.add_argument("--anti-entropy", default="on", choices=["on", "off"],
                   help="dynamo: Merkle trees kept current on the write path and exchanged "
                        "(default on)")
    p.add_argument("--auth", default="on", choices=["on", "off"],
                   help="dynamo: internode HMAC authentication and signed contexts (on, the "
                        "default), or insecure = true (off)")
    p.add_argument("--redis-reads", default="primary", choices=["primary", "spread"],
                   help="Redis reads on the primary (default), or on each connection's own node")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.concurrency < 1 or args.rate <= 0:
        p.error("--rounds, --seconds, --concurrency and --rate must be positive")
    stores = parse_stores(args.store)

    print(f"{NODES} nodes on loopback per store, {KEYS} keys, ~1 KB values, 50/50 GET/PUT, "
          f"{args.concurrency} connections at saturation, {args.rate:g} ops/s offered, "
          f"{args.seconds:g} s per phase, {args.rounds} round(s) of {', '.join(stores)}; "
          f"{os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}", flush=True)
    for name in stores:
        print(f"  {name}: {store_setup(name, args)}")
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        print(f"\nround {rnd}", flush=True)
        print(HEADER, flush=True)
        for name in stores:
            run = measure(name, args, f"{args.seed}-{rnd}")
            run["round"] = rnd
            runs.append(run)
            for phase in ("saturation", "offered"):
                print(row(name, run[phase]), flush=True)
            if run["log_signs"]:
                print(f"{'':<7} in the nodes' logs: "
                      + ", ".join(f"{k} {v}" for k, v in run["log_signs"].items()), flush=True)
    summ = summarize(runs, stores)
    print_summary(summ, args.rounds)
    out: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                      for k, v in vars(args).items()}
                           | {"stores": stores, "keys": KEYS, "nodes": NODES,
                              "cores": os.cpu_count()},
                           "runs": runs, **summ}
    if OURS in summ["median"]:
        out["targets"] = targets(summ)
        print(json.dumps(out["targets"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
