"""Merkle anti-entropy diff: time and bytes to find the differences between two trees.

Run: python benchmarks/merkle_diff.py [--keys 100000] [--shape 16,4,16]

Prints, for 1/10/100/1000 differing keys among --keys keys: the time for the driver to find them
(in process, requests and replies msgpack-encoded and decoded as on the wire), the bytes that
would cross the wire, round trips, and the bytes of shipping every (key, digest) instead. Also the
cost of the write path: µs per update() and per update() including the lazy rehash.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.merkle import MerkleTree, Shape, diff  # noqa: E402


def _digest(tag: str) -> bytes:
    return hashlib.blake2b(tag.encode(), digest_size=16).digest()


def _diverge(base: list[tuple[str, bytes]], n_diffs: int, shape: Shape, seed: int):
    """Two trees over ``base`` differing in ``n_diffs`` keys: a third changed, a third missing
    on the remote, a third only on the remote."""
    local = MerkleTree.build(base, shape)
    remote = MerkleTree.build(base, shape)
    rng = random.Random(seed)
    expected = set()
    for j, i in enumerate(rng.sample(range(len(base)), n_diffs)):
        key = base[i][0]
        if j % 3 == 0:
            remote.update(key, _digest(f"changed {key}"))
            expected.add(key)
        elif j % 3 == 1:
            remote.remove(key)
            expected.add(key)
        else:
            remote.update(f"{key}/new", _digest(key))
            expected.add(f"{key}/new")
    _ = local.root, remote.root  # the node keeps hashes current; don't time the flush here
    return local, remote, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--shape", default="16,4,16", help="fanout,depth,digest_size")
    parser.add_argument("--repeat", type=int, default=5, help="diff runs per case (best kept)")
    args = parser.parse_args()
    try:
        shape = Shape(*(int(x) for x in args.shape.split(",")))
    except (TypeError, ValueError) as exc:
        sys.exit(f"bad --shape {args.shape!r}: {exc}")
    if args.keys < 1000:
        sys.exit("--keys must be at least 1000")

    base = [(f"user:{i:08d}", _digest(str(i))) for i in range(args.keys)]
    full_bytes = len(msgpack.packb([[k, d] for k, d in base]))
    started = time.perf_counter()
    MerkleTree.build(base, shape)
    build_s = time.perf_counter() - started
    print(
        f"shape fanout={shape.fanout} depth={shape.depth} digest={shape.digest_size} B "
        f"({shape.segments} segments), {args.keys} keys"
    )
    print(
        f"build: {build_s * 1000:.0f} ms; shipping every (key, digest) would be {full_bytes} bytes"
    )
    print(
        f"{'diffs':>6} {'found':>6} {'diff ms':>9} {'bytes':>9} {'sent':>8} {'received':>9} "
        f"{'trips':>5} {'% of full':>9}"
    )
    for n_diffs in (1, 10, 100, 1000):
        local, remote, expected = _diverge(base, n_diffs, shape, seed=n_diffs)
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = diff(local, remote)
            best = min(best, time.perf_counter() - started)
        if result.keys != expected:
            sys.exit(f"WRONG: {n_diffs} differences, found {len(result.keys)}")
        print(
            f"{n_diffs:>6} {len(result.keys):>6} {best * 1000:>9.2f} {result.bytes_total:>9} "
            f"{result.bytes_sent:>8} {result.bytes_received:>9} {result.round_trips:>5} "
            f"{100 * result.bytes_total / full_bytes:>8.2f}%"
        )

    # Write path: update() only marks a segment dirty; the rehash happens at the next exchange.
    tree = MerkleTree.build(base, shape)
    n = min(args.keys, 100_000)
    new = [(base[i][0], _digest(f"v2 {i}")) for i in range(n)]
    started = time.perf_counter()
    for key, digest in new:
        tree.update(key, digest)
    update_s = time.perf_counter() - started
    started = time.perf_counter()
    _ = tree.root
    flush_s = time.perf_counter() - started
    print(
        f"update(): {update_s / n * 1e6:.2f} µs per call ({n} calls); rehash after all of them: "
        f"{flush_s * 1000:.0f} ms, i.e. {(update_s + flush_s) / n * 1e6:.2f} µs per update "
        f"all in"
    )
    # Rehash cost when an exchange follows a small batch of writes (the steady state).
    batch = 100
    started = time.perf_counter()
    rounds = 200
    for r in range(rounds):
        for key, digest in new[r * batch : (r + 1) * batch]:
            tree.update(key, digest + b"x")
        _ = tree.root
    per = (time.perf_counter() - started) / (rounds * batch)
    print(f"update() + root after every {batch} updates: {per * 1e6:.2f} µs per update")


if __name__ == "__main__":
    main()
