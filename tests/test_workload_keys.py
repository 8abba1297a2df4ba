"""Rotating keys are on by default for cart and register (Jepsen's `independent` generator)."""

from __future__ import annotations

import random

from harness.settings import TestSettings
from harness.workloads import make_workload


def test_each_workload_has_its_default_and_zero_turns_rotation_off() -> None:
    assert TestSettings(workload="cart").rotate_every == 50
    assert TestSettings(workload="register").rotate_every == 50
    assert TestSettings(workload="cas-register").rotate_every == 100
    assert TestSettings(workload="set").rotate_every == 0  # one key, one final read
    assert TestSettings(workload="cart", ops_per_key=0).rotate_every == 0
    assert TestSettings(workload="cart", ops_per_key=7).rotate_every == 7
    # test.json records what the run did, not "the default"
    assert TestSettings(workload="register").to_json()["ops_per_key"] == 50


def test_a_default_cart_run_covers_many_keys_each_with_a_bounded_history() -> None:
    wl = make_workload("cart", 10, random.Random(1))
    ops = [wl.next_op() for _ in range(6000)]  # a minute at the default 100 ops/s
    per_key: dict[str, int] = {}
    for op in ops:
        per_key[op.key] = per_key.get(op.key, 0) + 1
    assert len(per_key) >= 110
    assert max(per_key.values()) <= 50
    fixed = make_workload("cart", 10, random.Random(1), ops_per_key=0)
    assert len({fixed.next_op().key for _ in range(6000)}) == 10


def test_register_revisits_long_idle_keys_and_cart_does_not() -> None:
    wl = make_workload("register", 10, random.Random(1))
    ops = [wl.next_op() for _ in range(3000)]  # 30 s at the default 100 ops/s
    seen: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        seen.setdefault(op.key, []).append(i)
    # a revisited key comes back only after a generation of keys (10 x 50 operations)
    idle = {k: max((b - a for a, b in zip(v, v[1:], strict=False)), default=0)
            for k, v in seen.items()}
    revisited = [k for k, gap in idle.items() if gap >= 500]
    assert len(revisited) >= 5
    assert not [k for k, gap in idle.items() if 100 < gap < 500]  # else: a key in play
    assert max(map(len, seen.values())) <= 150  # three lives of 50 operations at most
    assert wl.all_keys() == sorted(seen, key=lambda k: int(k[1:]))  # final reads read them all
    cart = make_workload("cart", 10, random.Random(1))
    where: dict[str, list[int]] = {}
    for i in range(3000):
        where.setdefault(cart.next_op().key, []).append(i)
    assert max(b - a for v in where.values() for a, b in zip(v, v[1:], strict=False)) < 500


def test_revisits_leave_the_key_sequence_alone_until_a_key_is_idle_long_enough() -> None:
    from harness.workloads.keys import KeySpace

    plain = KeySpace("k", 4, random.Random(7), ops_per_key=5)
    revisiting = KeySpace("k", 4, random.Random(7), ops_per_key=5, revisit=1.0)
    # the first 20 operations (4 x 5) are the same: no key has been idle long enough
    assert [plain.pick() for _ in range(20)] == [revisiting.pick() for _ in range(20)]
    later = [revisiting.pick() for _ in range(400)]
    assert revisiting.next_index < plain.next_index + 400 // 5  # old keys came back
    assert set(later) <= set(revisiting.all())


def test_a_register_key_ends_each_life_with_a_delete() -> None:
    # the key stays deleted until the final reads (or a revisit): a value that comes back after
    # its tombstone is reaped is still there to be read, where a last write would cover it
    wl = make_workload("register", 10, random.Random(3))
    fs: dict[str, list[str]] = {}
    for _ in range(3000):
        op = wl.next_op()
        fs.setdefault(op.key, []).append(op.f)
    lives = [f[i:i + 50] for f in fs.values() for i in range(0, len(f), 50)]
    finished = [life for life in lives if len(life) == 50]
    assert len(finished) >= 40
    assert all(life[-1] == "delete" for life in finished)
    # within a life deletes stay a quarter, so reads keep finding values
    middle = [f for life in finished for f in life[:-1]]
    assert 0.2 < middle.count("delete") / len(middle) < 0.3
