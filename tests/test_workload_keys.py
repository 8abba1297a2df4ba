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
