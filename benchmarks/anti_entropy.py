"""Merkle anti-entropy between two real replicas: time and bytes of one exchange round.

    python benchmarks/anti_entropy.py [--keys 100000] [--diffs 100] [--fsync os]

Two nodes (N=2, Q=64, so both replicate every partition) run in this process, each with its own
SQLite store in a temporary folder and the real TCP transport on loopback. Both are loaded with
--keys keys through the replica's merge path (so the Merkle trees are kept current exactly as on
a live node); then the replicas are made to differ in --diffs keys (a third changed on B, a third
only on A, a third only on B). One anti-entropy round on A exchanges every partition's tree with
B, descends only into differing branches and repairs both ways. Printed: the time of that round
(target <= 2 s for 100,000 keys and 100 differences), the bytes exchanged, and the same for other
numbers of differences and keys, to show that bytes follow the differences, not the keys.
Last, the write-path cost of keeping the trees current: coordinated writes per second on one
replica with anti-entropy on versus off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.clocks import Version  # noqa: E402
from node.config import ClusterConfig, NodeEntry  # noqa: E402
from node.env import SystemClock  # noqa: E402
from node.server import Node  # noqa: E402
from node.storage import SqliteStorage  # noqa: E402
from node.transport import TcpTransport  # noqa: E402

LOG = logging.getLogger("bench")


def free_ports(host: str, count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Pair:
    """Two nodes A and B in this process, over real TCP and SQLite."""

    def __init__(self, root: Path, fsync: str, anti_entropy: bool = True) -> None:
        ports = free_ports("127.0.0.1", 4)
        self.entries = (NodeEntry("a", "127.0.0.1", ports[0], ports[1]),
                        NodeEntry("b", "127.0.0.1", ports[2], ports[3]))
        self.cfg = ClusterConfig(nodes=self.entries, n=2, r=1, w=1, q=64, fsync=fsync,
                                 request_timeout_ms=10_000, anti_entropy=anti_entropy,
                                 aae_max_keys=1_000_000)
        self.root, self.fsync = root, fsync
        self.nodes: dict[str, Node] = {}

    async def start(self) -> None:
        clock = SystemClock()
        for e in self.entries:
            peers = {o.id: (o.host, o.peer_port) for o in self.entries if o.id != e.id}
            storage = SqliteStorage(self.root / e.id / "store.sqlite3", self.fsync, LOG)
            transport = TcpTransport(e.id, e.host, e.peer_port, peers, LOG)
            node = Node(self.cfg, e.id, clock, random.Random(1), storage, transport, LOG)
            await transport.start()
            self.nodes[e.id] = node

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.transport.close()
            await node.storage.close()


def version(tag: str, counter: int) -> list[Version]:
    return [Version("w.1", counter, 1_700_000_000_000 + counter, (), f'"{tag}"', False)]


async def load(node: Node, keys: list[str]) -> None:
    waits = [node.replica.merge(k, version(k, 1)) for k in keys]
    for i in range(0, len(waits), 10_000):
        await asyncio.gather(*waits[i:i + 10_000])


async def diverge(pair: Pair, keys: list[str], diffs: int, rng: random.Random, round_no: int
                  ) -> None:
    a, b = pair.nodes["a"].replica, pair.nodes["b"].replica
    waits = []
    for j, i in enumerate(rng.sample(range(len(keys)), diffs)):
        key = keys[i]
        if j % 3 == 0:  # a newer version on B only
            waits.append(b.merge(key, version(f"{key} changed {round_no}", 2 + round_no)))
        elif j % 3 == 1:  # a new key on A only
            waits.append(a.merge(f"{key}/a{round_no}", version(key, 1)))
        else:  # a new key on B only
            waits.append(b.merge(f"{key}/b{round_no}", version(key, 1)))
    await asyncio.gather(*waits)


async def one_round(pair: Pair) -> tuple[float, int, int, int]:
    """(seconds, keys repaired, bytes exchanged, round trips) of one round on A."""
    aae = pair.nodes["a"].aae
    before = {p: i.exchanges for p, i in aae.info.items()}
    roots_before = (aae.root_messages, aae.root_bytes)
    t0 = time.perf_counter()
    repaired = await aae.run_once()
    took = time.perf_counter() - t0
    sent = trips = 0
    for p, info in aae.info.items():
        if info.exchanges > before[p] and info.last_exchange:
            sent += info.last_exchange["bytes"]
            trips += info.last_exchange["round_trips"]
    trips += aae.root_messages - roots_before[0]  # every shared partition's roots, at once
    sent += aae.root_bytes - roots_before[1]
    return took, repaired, sent, trips


def roots_equal(pair: Pair) -> bool:
    a, b = pair.nodes["a"].aae.trees, pair.nodes["b"].aae.trees
    return all(a[p].root == b[p].root for p in a)


async def exchange_case(root: Path, n_keys: int, diff_list: list[int], fsync: str) -> list[dict]:
    pair = Pair(root, fsync)
    await pair.start()
    try:
        keys = [f"key{i:07d}" for i in range(n_keys)]
        t0 = time.perf_counter()
        await asyncio.gather(load(pair.nodes["a"], keys), load(pair.nodes["b"], keys))
        print(f"  loaded {n_keys} keys on both replicas in {time.perf_counter() - t0:.1f} s",
              flush=True)
        rng = random.Random(n_keys)
        out = []
        for r, diffs in enumerate(diff_list):
            if diffs:
                await diverge(pair, keys, diffs, rng, r)
            took, repaired, sent, trips = await one_round(pair)
            row = {"keys": n_keys, "diffs": diffs, "seconds": took, "repaired": repaired,
                   "bytes": sent, "round_trips": trips, "converged": roots_equal(pair)}
            out.append(row)
            print(f"  {n_keys:>7} keys, {diffs:>5} differing: one round {took * 1000:8.1f} ms, "
                  f"repaired {repaired:>5}, {sent:>9} bytes exchanged, {trips:>4} round trips, "
                  f"roots equal after: {row['converged']}", flush=True)
        return out
    finally:
        await pair.close()


async def write_path(root: Path, writes: int, anti_entropy: bool, fsync: str) -> float:
    """Coordinated writes per second on one replica (local path only: no network)."""
    pair = Pair(root, fsync, anti_entropy=anti_entropy)
    await pair.start()
    try:
        replica = pair.nodes["a"].replica
        t0 = time.perf_counter()
        waits = []
        for i in range(writes):
            _, _, durable = replica.coordinate(f"wp{i % 20000}", f'"{i}"', {}, False)
            waits.append(durable)
            if len(waits) >= 2000:
                await asyncio.gather(*waits)
                waits = []
        await asyncio.gather(*waits)
        return writes / (time.perf_counter() - t0)
    finally:
        await pair.close()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aae-bench-") as tmp:
        root = Path(tmp)
        print(f"main case: {args.keys} keys, {args.diffs} differing (fsync={args.fsync})")
        main = await exchange_case(root / "main", args.keys, [0, args.diffs], args.fsync)
        print("bytes against the number of differences (same keys):")
        by_diffs = await exchange_case(root / "diffs", args.keys, [10, 100, 1000], args.fsync)
        small = max(args.keys // 10, 1000)
        print(f"bytes against the number of keys ({args.diffs} differing):")
        by_keys = await exchange_case(root / "keys", small, [args.diffs], args.fsync)
        print("write path (coordinated local writes, trees kept current or not):")
        rates = {}
        for on in (False, True, False, True):
            rate = await write_path(root / f"wp{len(rates)}{on}", args.writes, on, args.fsync)
            rates.setdefault(on, []).append(rate)
        off_best, on_best = max(rates[False]), max(rates[True])
        print(f"  anti-entropy off: {off_best:8.0f} writes/s   on: {on_best:8.0f} writes/s   "
              f"cost of the trees: {(1 / on_best - 1 / off_best) * 1e6:+.1f} µs per write "
              f"({(off_best - on_best) / off_best * 100:+.1f} %)")
    hit = main[1]
    print("summary:")
    print(f"  {hit['keys']} keys, {hit['diffs']} differing: repaired {hit['repaired']} in "
          f"{hit['seconds']:.2f} s (target <= 2 s: {'met' if hit['seconds'] <= 2 else 'MISSED'})"
          f", {hit['bytes']} bytes; in sync: {main[0]['bytes']} bytes")
    print("  bytes by differences: " + ", ".join(f"{r['diffs']}: {r['bytes']}" for r in by_diffs))
    print(f"  {args.diffs} differences among {by_keys[0]['keys']} keys: {by_keys[0]['bytes']} "
          f"bytes; among {hit['keys']} keys: {hit['bytes']} bytes")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--diffs", type=int, default=100)
    p.add_argument("--writes", type=int, default=20_000, help="writes per write-path run")
    p.add_argument("--fsync", default="os", choices=["always", "os", "none"])
    args = p.parse_args()
    if args.keys < 1 or not 0 < args.diffs <= args.keys:
        p.error("need --keys >= 1 and 0 < --diffs <= --keys")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(asyncio.wait_for(main_async(args), 900))


if __name__ == "__main__":
    main()
