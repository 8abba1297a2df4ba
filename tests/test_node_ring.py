"""Ring properties: balanced claims, minimal movement, preference lists of distinct nodes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.ring import Ring, claim

sizes = st.integers(min_value=1, max_value=12)
qs = st.sampled_from([16, 32, 64, 128, 256])


def names(s: int) -> list[str]:
    return [f"n{i}" for i in range(1, s + 1)]


@given(sizes, qs)
def test_every_node_owns_floor_or_ceil_of_q_over_s(s: int, q: int) -> None:
    owners = claim(names(s), q)
    counts = [owners.count(n) for n in names(s)]
    assert sum(counts) == q
    assert set(counts) <= {q // s, -(-q // s)}


@given(sizes, qs)
def test_adding_a_node_moves_only_what_the_newcomer_takes(s: int, q: int) -> None:
    before = claim(names(s), q)
    after = claim(names(s + 1), q)
    moved = [p for p in range(q) if before[p] != after[p]]
    assert all(after[p] == f"n{s + 1}" for p in moved)
    assert len(moved) <= -(-q // (s + 1))
    assert len(moved) >= q // (s + 1)


@given(st.integers(min_value=1, max_value=8), qs, st.text(max_size=20))
def test_preference_list_is_n_distinct_nodes_then_fallbacks(s: int, q: int, key: str) -> None:
    n = min(3, s)
    ring = Ring.build(names(s), q, n)
    pref, fb = ring.preference_list(key), ring.fallbacks(key)
    assert len(pref) == n and len(set(pref)) == n
    assert set(pref).isdisjoint(fb) and len(pref) + len(fb) == s
    # the first node is the owner of the key's partition, walking clockwise
    assert pref[0] == ring.owners[ring.partition(key)]


def test_same_nodes_same_ring() -> None:
    assert Ring.build(names(5), 64, 3) == Ring.build(names(5), 64, 3)


def test_keys_spread_over_all_nodes() -> None:
    ring = Ring.build(names(3), 64, 1)
    firsts = [ring.preference_list(f"k{i}")[0] for i in range(3000)]
    for n in names(3):
        assert 700 < firsts.count(n) < 1300


def test_bad_ring_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        claim(names(3), 48)
    with pytest.raises(ValueError, match="n must be"):
        Ring.build(names(2), 64, 3)
