"""Tests for node.merkle: the per-partition Merkle tree and its anti-entropy exchange."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.merkle import (
    MAX_PARENTS_PER_REQUEST,
    ExchangeError,
    MerkleTree,
    Shape,
    answer,
    diff,
    diff_async,
    version_digest,
)

# Small shapes put many keys in one segment and leave whole subtrees empty on one side;
# the default shape is what the node uses.
SHAPES = [Shape(fanout=4, depth=2, digest_size=8), Shape(fanout=2, depth=3), Shape()]

keys_st = st.text(max_size=12)
digests_st = st.binary(min_size=1, max_size=20)
key_sets = st.dictionaries(keys_st, digests_st, max_size=150)


def _digest(i: int, salt: str = "") -> bytes:
    return hashlib.blake2b(f"{salt}{i}".encode(), digest_size=16).digest()


def _all_hashes(tree: MerkleTree) -> list[list[bytes]]:
    return [
        tree.hashes(level, range(tree.shape.width(level))) for level in range(tree.shape.depth + 1)
    ]


@st.composite
def diverged(draw: st.DrawFn) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, set[str]]]:
    """Two key sets that share a base and differ in random ways, plus the expected differences."""
    base = draw(key_sets)
    local, remote = dict(base), dict(base)
    expected: dict[str, set[str]] = {"local_only": set(), "remote_only": set(), "different": set()}
    for key in sorted(base):
        action = draw(st.sampled_from(["same", "same", "drop_local", "drop_remote", "change"]))
        if action == "drop_local":
            del local[key]
            expected["remote_only"].add(key)
        elif action == "drop_remote":
            del remote[key]
            expected["local_only"].add(key)
        elif action == "change":
            new = draw(digests_st.filter(lambda d, old=base[key]: d != old))
            remote[key] = new
            expected["different"].add(key)
    for key, digest in draw(st.dictionaries(keys_st, digests_st, max_size=20)).items():
        if key not in base:
            local[key] = digest
            expected["local_only"].add(key)
    for key, digest in draw(st.dictionaries(keys_st, digests_st, max_size=20)).items():
        if key not in base and key not in local:
            remote[key] = digest
            expected["remote_only"].add(key)
    return local, remote, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=diverged(), shape=st.sampled_from(SHAPES), tiny_batches=st.booleans())
def test_diff_finds_exactly_the_differing_keys(case, shape, tiny_batches) -> None:
    local_items, remote_items, expected = case
    local = MerkleTree.build(local_items.items(), shape)
    remote = MerkleTree.build(remote_items.items(), shape)
    limits = {"max_parents": 1, "max_segments": 1} if tiny_batches else {}
    result = diff(local, remote, **limits)
    assert result.local_only == expected["local_only"]
    assert result.remote_only == expected["remote_only"]
    assert result.different == expected["different"]
    assert result.keys == set().union(*expected.values())
    assert result.round_trips >= 1 and result.bytes_sent > 0 and result.bytes_received > 0
    # Seen from the other side, the roles swap.
    back = diff(remote, local, **limits)
    assert back.local_only == expected["remote_only"]
    assert back.remote_only == expected["local_only"]
    assert back.different == expected["different"]
    assert (local.root == remote.root) == (not result.keys)


@settings(max_examples=100, deadline=None)
@given(items=key_sets, key=keys_st, digest=digests_st, shape=st.sampled_from(SHAPES))
def test_update_then_remove_restores_the_root(items, key, digest, shape) -> None:
    items.pop(key, None)
    tree = MerkleTree.build(items.items(), shape)
    before, before_all = tree.root, _all_hashes(tree)
    tree.update(key, digest)
    assert tree.root != before
    assert key in tree and tree.get(key) == digest and len(tree) == len(items) + 1
    assert tree.remove(key) is True
    assert tree.root == before
    assert _all_hashes(tree) == before_all
    assert tree.remove(key) is False
    assert len(tree) == len(items)


@settings(max_examples=100, deadline=None)
@given(items=key_sets.filter(bool), new=digests_st, shape=st.sampled_from(SHAPES))
def test_changing_a_digest_and_back_restores_the_root(items, new, shape) -> None:
    tree = MerkleTree.build(items.items(), shape)
    before = tree.root
    key = sorted(items)[0]
    tree.update(key, new)
    assert (tree.root == before) == (new == items[key])
    tree.update(key, items[key])
    assert tree.root == before


@settings(max_examples=100, deadline=None)
@given(items=key_sets, seed=st.integers(0, 2**32), shape=st.sampled_from(SHAPES))
def test_root_is_independent_of_insertion_order(items, seed, shape) -> None:
    pairs = list(items.items())
    built = MerkleTree.build(pairs, shape)
    random.Random(seed).shuffle(pairs)
    shuffled_build = MerkleTree.build(pairs, shape)
    incremental = MerkleTree(shape)
    for i, (key, digest) in enumerate(pairs):
        incremental.update(key, digest)
        if i % 7 == 3:
            _ = incremental.root  # flush part-way so later updates hit already-hashed paths
    assert built.root == shuffled_build.root == incremental.root
    assert _all_hashes(built) == _all_hashes(incremental)


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["update", "remove", "flush"]), keys_st, digests_st), max_size=80
    ),
    shape=st.sampled_from(SHAPES),
)
def test_incremental_tree_matches_a_fresh_build(ops, shape) -> None:
    tree, model = MerkleTree(shape), {}
    for op, key, digest in ops:
        if op == "update":
            tree.update(key, digest)
            model[key] = digest
        elif op == "remove":
            assert tree.remove(key) == (key in model)
            model.pop(key, None)
        else:
            _ = tree.root
    fresh = MerkleTree.build(model.items(), shape)
    assert _all_hashes(tree) == _all_hashes(fresh)
    assert len(tree) == len(model) and dict(tree.items()) == model


def test_an_update_changes_only_the_path_to_its_segment() -> None:
    shape = Shape()
    tree = MerkleTree.build(((f"k{i}", _digest(i)) for i in range(5000)), shape)
    before = _all_hashes(tree)
    tree.update("k42", b"new version")
    after = _all_hashes(tree)
    seg = tree.segment_of("k42")
    for level in range(shape.depth + 1):
        changed = [
            i for i, (a, b) in enumerate(zip(before[level], after[level], strict=True)) if a != b
        ]
        assert changed == [seg // shape.span(level)]


def test_empty_trees_agree_and_empty_subtrees_hash_to_zero() -> None:
    a, b = MerkleTree(), MerkleTree()
    assert a.root == b.root == bytes(16)
    result = diff(a, b)
    assert result.keys == set() and result.round_trips == 1
    a.update("x", b"1")
    assert a.root != bytes(16)
    assert a.remove("x") and a.root == bytes(16)


def test_fresh_replica_fetches_everything_in_bounded_batches() -> None:
    full = MerkleTree.build((f"k{i}", _digest(i)) for i in range(3000))
    empty = MerkleTree()
    pulled = diff(empty, full, max_segments=1024)
    assert pulled.remote_only == {f"k{i}" for i in range(3000)}
    assert pulled.local_only == pulled.different == set()
    # One root request, then 65536 segments in 64 batches of 1024, no hash descent.
    assert pulled.round_trips == 1 + full.shape.segments // 1024
    pushed = diff(full, empty)
    assert pushed.local_only == {f"k{i}" for i in range(3000)} and pushed.round_trips == 1


def _diverge(n_keys: int, n_diffs: int, seed: int) -> tuple[MerkleTree, MerkleTree, set[str]]:
    items = [(f"key-{i}", _digest(i)) for i in range(n_keys)]
    a, b = MerkleTree.build(items), MerkleTree.build(items)
    rng = random.Random(seed)
    changed = {f"key-{i}" for i in rng.sample(range(n_keys), n_diffs)}
    for key in changed:
        b.update(key, _digest(n_keys, key))
    return a, b, changed


def test_bytes_follow_the_differences_not_the_keys() -> None:
    by_diffs = {}
    for n_diffs in (10, 100, 1000):
        a, b, changed = _diverge(20_000, n_diffs, seed=n_diffs)
        result = diff(a, b)
        assert result.different == changed
        by_diffs[n_diffs] = result.bytes_total
    assert by_diffs[10] < by_diffs[100] < by_diffs[1000]
    full_transfer = len(msgpack.packb([[k, d] for k, d in a.items()]))
    assert by_diffs[100] < full_transfer / 10
    # Four times the keys, same number of differences: about the same bytes.
    small = diff(*_diverge(10_000, 100, seed=1)[:2]).bytes_total
    large = diff(*_diverge(40_000, 100, seed=1)[:2]).bytes_total
    assert large < small * 1.5


def test_shape_mismatch_is_a_clear_error() -> None:
    a = MerkleTree(Shape(fanout=16, depth=4))
    b = MerkleTree(Shape(fanout=16, depth=3))
    b.update("k", b"v")
    with pytest.raises(ExchangeError, match="shape mismatch"):
        diff(a, b)


def test_answer_rejects_bad_requests_with_messages() -> None:
    tree = MerkleTree.build([("a", b"1")])
    assert "unknown op" in answer(tree, {"op": "nope"})["error"]
    assert "must be a map" in answer(tree, [1, 2])["error"]
    assert "outside 1..4" in answer(tree, {"op": "children", "level": 9, "parents": [0]})["error"]
    assert "outside 0..0" in answer(tree, {"op": "children", "level": 1, "parents": [3]})["error"]
    too_many = {"op": "children", "level": 2, "parents": [0] * (MAX_PARENTS_PER_REQUEST + 1)}
    assert "limit" in answer(tree, too_many)["error"]
    assert "outside" in answer(tree, {"op": "entries", "ranges": [[5, 2]]})["error"]
    assert "[start, stop]" in answer(tree, {"op": "entries", "ranges": [7]})["error"]
    good = answer(
        tree, {"op": "entries", "ranges": [[tree.segment_of("a"), tree.segment_of("a") + 1]]}
    )
    assert good == {"entries": [[["a", b"1"]]]}


def test_driver_rejects_malformed_replies() -> None:
    tree = MerkleTree.build([("a", b"1")])
    with pytest.raises(ExchangeError, match="malformed reply to root"):
        diff(tree, lambda req: {"root": "not bytes"})
    with pytest.raises(ExchangeError, match="remote refused root: busy"):
        diff(tree, lambda req: {"error": "busy"})

    def short_children(req: dict) -> dict:
        if req["op"] == "root":
            return {"root": b"\x01" * 16, "count": 1}
        return {"hashes": b"\x01" * 5}

    with pytest.raises(ExchangeError, match="children reply has 5 bytes"):
        diff(tree, short_children)


def test_bad_input_to_the_tree() -> None:
    tree = MerkleTree()
    with pytest.raises(TypeError, match="key must be str"):
        tree.update(b"k", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="digest must be bytes"):
        tree.update("k", "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        tree.update("k", b"")
    with pytest.raises(ValueError, match="fanout"):
        Shape(fanout=1)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        Shape(fanout=256, depth=4)
    with pytest.raises(ValueError, match="not a Merkle tree state"):
        MerkleTree.from_state({"entries": []})
    with pytest.raises(TypeError, match="use diff_async"):

        async def ask(req: dict) -> dict:
            return {}

        diff(tree, ask)


def test_state_survives_msgpack() -> None:
    tree = MerkleTree.build(
        ((f"k{i}", version_digest(str(i).encode())) for i in range(2000)), Shape(16, 3, 12)
    )
    state = msgpack.unpackb(msgpack.packb(tree.to_state()))
    loaded = MerkleTree.from_state(state)
    assert loaded.shape == tree.shape and len(loaded) == 2000
    assert loaded.root == tree.root and dict(loaded.items()) == dict(tree.items())


async def _serve_tree(tree: MerkleTree) -> asyncio.Server:
    """A loopback TCP server answering length-prefixed msgpack requests against ``tree``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(4)
                request = msgpack.unpackb(await reader.readexactly(struct.unpack(">I", header)[0]))
                payload = msgpack.packb(answer(tree, request))
                writer.write(struct.pack(">I", len(payload)) + payload)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.timeout(60)
def test_async_driver_over_real_tcp_counts_the_bytes_on_the_wire() -> None:
    a, b, changed = _diverge(20_000, 100, seed=7)
    b.update("only-remote", b"r")
    a.update("only-local", b"l")

    async def run() -> tuple:
        server = await _serve_tree(b)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        on_wire = {"sent": 0, "received": 0}

        async def ask(request: dict) -> dict:
            payload = msgpack.packb(request)
            on_wire["sent"] += len(payload)
            writer.write(struct.pack(">I", len(payload)) + payload)
            await writer.drain()
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            on_wire["received"] += size
            return msgpack.unpackb(await reader.readexactly(size))

        try:
            result = await asyncio.wait_for(diff_async(a, ask), timeout=30)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()
        return result, on_wire

    result, on_wire = asyncio.run(run())
    assert result.different == changed
    assert result.local_only == {"only-local"} and result.remote_only == {"only-remote"}
    assert result.bytes_sent == on_wire["sent"] and result.bytes_received == on_wire["received"]


def test_async_driver_with_an_in_process_tree() -> None:
    a, b, changed = _diverge(5_000, 30, seed=3)
    result = asyncio.run(diff_async(a, b))
    assert result.different == changed and result.keys == changed
    assert result.bytes_total == diff(a, b).bytes_total


def test_async_ask_replies_are_taken_as_decoded() -> None:
    """`diff_async` with an async ask (a transport's, whose replies msgpack decoded) measures
    the replies without a second round trip: the same diff and the same byte counts as the
    in-process exchange."""
    a, b = MerkleTree(), MerkleTree()
    for i in range(300):
        a.update(f"k{i}", version_digest(f"v{i}".encode()))
        b.update(f"k{i}", version_digest(f"v{i if i % 7 else -i}".encode()))
    b.update("only-b", version_digest(b"x"))

    async def ask(req: dict) -> Any:
        return msgpack.unpackb(msgpack.packb(answer(b, req), use_bin_type=True), raw=False)

    got = asyncio.run(diff_async(a, ask))
    want = diff(a, b)
    assert got.keys == want.keys and got.different == want.different
    assert (got.bytes_sent, got.bytes_received, got.round_trips) == (
        want.bytes_sent, want.bytes_received, want.round_trips)
