"""Properties of version vectors, dotted versions and sibling reconciliation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import clocks
from node.clocks import Version

ACTORS = ["a.1", "b.1", "c.1", "a.2"]

counters = st.integers(min_value=0, max_value=6)
stamps = st.integers(min_value=0, max_value=3)
vvs = st.dictionaries(st.sampled_from(ACTORS), st.tuples(counters, stamps), max_size=4)


def closed(ctx: clocks.VV, made: list[Version]) -> clocks.VV:
    """A context that names (a, c) has seen every version of `a` up to c, and their pasts: a
    replica never holds a version without the ones it made obsolete or their coverers."""
    changed = True
    while changed:
        changed = False
        for v in made:
            if ctx.get(v.actor, (0, 0))[0] >= v.counter:
                merged = clocks.vv_merge(ctx, v.clock())
                if merged != ctx:
                    ctx, changed = merged, True
    return ctx


@st.composite
def histories(draw: st.DrawFn) -> list[Version]:
    """Versions as a real store makes them: each written at some actor with, as its past, the
    context of some earlier versions the writer had read (so pasts are causally closed)."""
    made: list[Version] = []
    top: dict[str, int] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        seen = draw(st.lists(st.sampled_from(made), max_size=3)) if made else []
        ctx = closed(clocks.context_of(seen), made)
        actor = draw(st.sampled_from(ACTORS))
        # an actor's counters only grow (its local replica saw all its own writes)
        top[actor] = max(top.get(actor, 0), ctx.get(actor, (0, 0))[0]) + 1
        tomb = draw(st.booleans())
        made.append(Version(actor, top[actor], len(made),
                            tuple(sorted((a, c, t) for a, (c, t) in ctx.items())),
                            None if tomb else f'"{actor}:{top[actor]}"', tomb))
    return made


pools = histories()


@st.composite
def sibling_set_triples(draw: st.DrawFn) -> tuple[list[Version], ...]:
    pool = draw(pools)
    pick = st.lists(st.sampled_from(pool), max_size=6).map(lambda vs: clocks.sync(vs))
    return draw(pick), draw(pick), draw(pick)


def canon(vv: dict) -> dict:
    return {a: e for a, e in vv.items() if e[0] > 0}


@given(vvs, vvs)
def test_merge_is_commutative(a: dict, b: dict) -> None:
    assert clocks.vv_merge(a, b) == clocks.vv_merge(b, a)


@given(vvs, vvs, vvs)
def test_merge_is_associative(a: dict, b: dict, c: dict) -> None:
    assert clocks.vv_merge(clocks.vv_merge(a, b), c) == clocks.vv_merge(a, clocks.vv_merge(b, c))


@given(vvs)
def test_merge_is_idempotent(a: dict) -> None:
    assert clocks.vv_merge(a, a) == a


@given(vvs, vvs)
def test_merge_is_an_upper_bound(a: dict, b: dict) -> None:
    m = clocks.vv_merge(a, b)
    assert clocks.vv_descends(m, a) and clocks.vv_descends(m, b)


@given(vvs)
def test_descends_is_reflexive(a: dict) -> None:
    assert clocks.vv_descends(a, a)


@given(vvs, vvs)
def test_descends_is_antisymmetric(a: dict, b: dict) -> None:
    if clocks.vv_descends(a, b) and clocks.vv_descends(b, a):
        assert clocks.vv_counters(canon(a)) == clocks.vv_counters(canon(b))


@given(vvs, vvs, vvs)
def test_descends_is_transitive(a: dict, b: dict, c: dict) -> None:
    if clocks.vv_descends(a, b) and clocks.vv_descends(b, c):
        assert clocks.vv_descends(a, c)


@given(pools)
def test_sync_never_drops_a_version_nothing_covers(vs: list[Version]) -> None:
    kept = {v.id for v in clocks.sync(vs)}
    for v in vs:
        covered = any(o.covers(v) for o in vs)
        assert (v.id in kept) == (not covered), v


@given(sibling_set_triples())
def test_sync_is_commutative(sets: tuple[list[Version], ...]) -> None:
    a, b, _ = sets
    assert clocks.sync(a, b) == clocks.sync(b, a)


@given(sibling_set_triples())
def test_sync_is_associative(sets: tuple[list[Version], ...]) -> None:
    a, b, c = sets
    assert clocks.sync(clocks.sync(a, b), c) == clocks.sync(a, clocks.sync(b, c))


@given(sibling_set_triples())
def test_sync_is_idempotent(sets: tuple[list[Version], ...]) -> None:
    a = sets[0]
    assert clocks.sync(a, a) == a


def test_blind_writes_become_siblings_and_a_merged_context_replaces_them() -> None:
    s1: list[Version] = []
    v1, s1 = clocks.write(s1, {}, "x.1", 10, '"a"', False)
    v2, s1 = clocks.write(s1, {}, "x.1", 11, '"b"', False)
    assert [v.id for v in s1] == [v1.id, v2.id]
    v3, s1 = clocks.write(s1, clocks.context_of(s1), "x.1", 12, '"c"', False)
    assert [v.id for v in s1] == [v3.id]


def test_same_stale_context_through_same_coordinator_keeps_both() -> None:
    """The case plain per-node vector clocks get wrong."""
    _, s = clocks.write([], {}, "x.1", 1, '"base"', False)
    stale = clocks.context_of(s)
    w1, s = clocks.write(s, stale, "x.1", 2, '"one"', False)
    w2, s = clocks.write(s, stale, "x.1", 3, '"two"', False)
    assert {v.value for v in s} == {'"one"', '"two"'}
    assert w2.counter > w1.counter
    # a replica that only gets the second sibling set still keeps both
    replica = clocks.sync([w1], s)
    assert {v.id for v in replica} == {w1.id, w2.id}


def test_writes_at_different_coordinators_with_same_context_are_siblings() -> None:
    _, base = clocks.write([], {}, "x.1", 1, "1", False)
    ctx = clocks.context_of(base)
    _, sx = clocks.write(base, ctx, "x.1", 2, "2", False)
    _, sy = clocks.write(base, ctx, "y.1", 2, "3", False)
    merged = clocks.sync(sx, sy)
    assert sorted(v.value for v in merged) == ["2", "3"]


def test_tombstone_obsoletes_what_it_saw() -> None:
    _, s = clocks.write([], {}, "x.1", 1, "1", False)
    t, s = clocks.write(s, clocks.context_of(s), "x.1", 2, None, True)
    assert s == [t] and t.tombstone and t.value is None


@given(vvs)
def test_context_round_trips(vv: dict) -> None:
    assert clocks.decode_context(clocks.encode_context(vv)) == vv


@pytest.mark.parametrize("bad", ["nope", "c1.!!!", "c1.kZM", "c1." + "A" * 7,
                                 clocks.CONTEXT_PREFIX + "gqFhAQ"])
def test_unreadable_context_is_rejected(bad: str) -> None:
    with pytest.raises(clocks.ContextError):
        clocks.decode_context(bad)


@given(pools)
def test_sibling_sets_round_trip(vs: list[Version]) -> None:
    s = clocks.sync(vs)
    assert clocks.decode_versions(clocks.encode_versions(s)) == s


@settings(max_examples=50)
@given(vvs, st.integers(min_value=1, max_value=3))
def test_pruning_keeps_the_newest_entries(vv: dict, m: int) -> None:
    pruned = clocks.vv_prune(vv, m)
    assert len(pruned) == min(m, len(vv))
    dropped = set(vv) - set(pruned)
    if dropped and pruned:
        assert max(vv[a][1] for a in dropped) <= min(e[1] for e in pruned.values())
    assert clocks.vv_prune(vv, 0) == vv


def test_next_counter_never_reuses_a_counter_seen_in_the_context() -> None:
    # the context may know a later counter of this actor than the local replica does
    assert clocks.next_counter([], {"x.1": (7, 0)}, "x.1") == 8


def test_write_with_pruning_keeps_the_newest_entries_of_the_past() -> None:
    ctx = {"a.1": (3, 100), "b.1": (1, 50), "c.1": (2, 300)}
    new, _ = clocks.write([], ctx, "x.1", 400, "1", False, prune_max=2)
    assert {a for a, _, _ in new.past} == {"a.1", "c.1"}
    unpruned, _ = clocks.write([], ctx, "x.1", 400, "1", False)
    assert len(unpruned.past) == 3
