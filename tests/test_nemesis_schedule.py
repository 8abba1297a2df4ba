"""The nemesis: partition shapes and fault schedules (pure functions of a seed)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemesis.grudges import GRUDGES, bridge, halves, isolate, majorities_ring, one_way
from nemesis.schedule import (
    ALL_FAULTS,
    BEFORE_RESTART_S,
    FAULTS,
    HINT_CRASH_INTERVALS,
    HINT_HOLDER,
    parse_faults,
    parse_shapes,
    plan,
)

NODES5 = ["n1", "n2", "n3", "n4", "n5"]


def sees(grudge: dict, node: str, nodes: list[str]) -> set[str]:
    """Whom `node` can hear from (itself included)."""
    return set(nodes) - set(grudge.get(node, ()))


def test_parse_faults() -> None:
    assert parse_faults("none") == []
    assert parse_faults("all") == list(ALL_FAULTS)
    assert "packet" in parse_faults("partition,packet")
    assert parse_faults("pause, partition") == ["partition", "pause"]  # canonical order
    with pytest.raises(ValueError, match="unknown nemesis bogus"):
        parse_faults("partition,bogus")
    with pytest.raises(ValueError, match="empty"):
        parse_faults(" , ")


@pytest.mark.parametrize("seed", range(20))
def test_halves_is_a_clean_symmetric_cut(seed: int) -> None:
    grudge = halves(NODES5, random.Random(seed))
    sides = {frozenset(sees(grudge, n, NODES5)) for n in NODES5}
    assert len(sides) == 2
    assert sorted(len(s) for s in sides) == [2, 3]
    for a, dropped in grudge.items():
        assert a not in dropped
        for b in dropped:
            assert a in grudge[b]  # symmetric


def test_isolate_cuts_exactly_one_node() -> None:
    grudge = isolate(NODES5, random.Random(7))
    alone = [n for n in NODES5 if sees(grudge, n, NODES5) == {n}]
    assert len(alone) == 1
    for n in NODES5:
        if n != alone[0]:
            assert sees(grudge, n, NODES5) == set(NODES5) - set(alone)


@pytest.mark.parametrize("size", [3, 4, 5, 7])
def test_majorities_ring_gives_everyone_a_different_majority(size: int) -> None:
    nodes = [f"n{i}" for i in range(1, size + 1)]
    grudge = majorities_ring(nodes, random.Random(size))
    views = [frozenset(sees(grudge, n, nodes)) for n in nodes]
    assert all(len(v) == size // 2 + 1 for v in views)
    assert len(set(views)) == size  # nobody shares a majority
    for n, v in zip(nodes, views, strict=True):
        assert n in v


def test_bridge_has_one_node_that_sees_everyone() -> None:
    grudge = bridge(NODES5, random.Random(3))
    bridges = [n for n in NODES5 if sees(grudge, n, NODES5) == set(NODES5)]
    assert len(bridges) == 1
    others = [n for n in NODES5 if n not in bridges]
    assert all(bridges[0] not in grudge[n] for n in others)
    assert {len(sees(grudge, n, NODES5)) for n in others} == {3}  # its half plus the bridge


def test_one_way_is_asymmetric() -> None:
    grudge = one_way(NODES5, random.Random(1))
    assert len(grudge) == 1
    (victim, dropped), = grudge.items()
    assert dropped == frozenset(NODES5) - {victim}


def test_same_seed_same_schedule() -> None:
    a = plan(NODES5, list(FAULTS), 5, 60, random.Random(42))
    b = plan(NODES5, list(FAULTS), 5, 60, random.Random(42))
    c = plan(NODES5, list(FAULTS), 5, 60, random.Random(43))
    assert a == b
    assert a != c


def test_no_faults_means_only_heal() -> None:
    actions = plan(NODES5, [], 5, 30, random.Random(0))
    assert [(a.f, a.at) for a in actions] == [("heal", 30)]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 9),
       faults=st.lists(st.sampled_from(FAULTS), min_size=1, unique=True),
       interval=st.floats(0.5, 20), limit=st.floats(1, 120))
def test_every_start_has_a_later_stop(seed: int, size: int, faults: list[str], interval: float,
                                      limit: float) -> None:
    nodes = [f"n{i}" for i in range(1, size + 1)]
    actions = plan(nodes, faults, interval, limit, random.Random(seed))
    assert actions[-1].f == "heal" and actions[-1].at == round(limit, 3)
    assert [a.at for a in actions] == sorted(a.at for a in actions)
    starts = {a.id: a for a in actions if a.f == "start"}
    stops = {a.id: a for a in actions if a.f == "stop"}
    assert starts.keys() == stops.keys()
    if interval * 0.6 < limit:
        assert starts, "a schedule with faults chosen must use them"
    for fid, start in starts.items():
        assert start.fault in faults
        assert start.at <= stops[fid].at <= round(limit, 3)
        if start.fault in ("crash", "pause"):
            targets = start.value["nodes"]
            assert 1 <= len(targets) <= max(1, (size - 1) // 2)
            assert set(targets) <= set(nodes)
        if start.fault == "crash-many":  # N - 1 of the default N = 3, never every node
            assert 1 <= len(start.value["nodes"]) <= max(1, min(2, size - 1))
    # a node is never crashed and paused by the same period
    by_time: dict[float, list] = {}
    for start in starts.values():
        by_time.setdefault(start.at, []).append(start)
    for group in by_time.values():
        crashed = {n for a in group if a.fault in ("crash", "crash-many")
                   for n in a.value["nodes"]}
        paused = {n for a in group if a.fault == "pause" for n in a.value["nodes"]}
        cut = {n for a in group if a.fault == "power" for n in a.value["nodes"]}
        if size > 1:
            assert not crashed & paused
            assert not cut & (crashed | paused)


def test_power_cuts_the_whole_cluster_and_a_minority_in_turn() -> None:
    nodes = [f"n{i}" for i in range(1, 6)]
    for seed in range(20):
        cuts = [a.value["nodes"] for a in plan(nodes, ["power"], 3.0, 30.0, random.Random(seed))
                if a.f == "start"]
        assert len(cuts) >= 4
        assert all(cut == nodes for cut in cuts[::2])
        assert all(1 <= len(cut) <= 2 for cut in cuts[1::2])


def test_partitions_take_only_the_shapes_asked_for() -> None:
    nodes = [f"n{i}" for i in range(1, 6)]
    for seed in range(20):
        actions = plan(nodes, ["partition"], 2.0, 30.0, random.Random(seed),
                       shapes=["majorities-ring", "bridge"])
        kinds = {a.value["kind"] for a in actions if a.f == "start"}
        assert kinds and kinds <= {"majorities-ring", "bridge"}


def test_unknown_partition_shape_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown partition shape ring.*majorities-ring"):
        parse_shapes("ring")
    assert parse_shapes("all") == parse_shapes("") == sorted(GRUDGES)


def test_crash_many_kills_all_but_one_replica_at_once() -> None:
    for seed in range(20):
        starts = [a for a in plan(NODES5, ["crash-many"], 2.0, 20.0, random.Random(seed),
                                  replicas=4) if a.f == "start"]
        assert starts and all(len(set(a.value["nodes"])) == 3 for a in starts)
    three = [a for a in plan(["n1", "n2", "n3"], ["crash-many"], 2.0, 20.0, random.Random(1),
                             replicas=3) if a.f == "start"]
    assert all(len(a.value["nodes"]) == 2 for a in three)


def test_jitter_varies_periods_within_its_bounds_and_zero_keeps_them_exact() -> None:
    for seed in range(10):
        exact = plan(NODES5, ["pause"], 4.0, 120.0, random.Random(seed))
        assert plan(NODES5, ["pause"], 4.0, 120.0, random.Random(seed), jitter=0.0) == exact
        actions = plan(NODES5, ["pause"], 4.0, 120.0, random.Random(seed), jitter=0.5)
        starts = {a.id: a.at for a in actions if a.f == "start"}
        lengths = [a.at - starts[a.id] for a in actions if a.f == "stop" and a.at < 120.0]
        assert all(2.0 - 1e-3 <= x <= 6.0 + 1e-3 for x in lengths), lengths
        assert max(lengths) - min(lengths) > 0.5  # not in lockstep
    with pytest.raises(ValueError, match="jitter"):
        plan(NODES5, ["pause"], 4.0, 20.0, random.Random(0), jitter=1.0)


def test_some_partitions_end_with_a_crash_at_their_heal() -> None:
    at_heal = 0
    for seed in range(30):
        actions = plan(NODES5, ["partition", "crash"], 3.0, 60.0, random.Random(seed))
        stops = {a.id: a.at for a in actions if a.f == "stop"}
        partition_ends = {stops[a.id] for a in actions if a.f == "start" and
                          a.fault == "partition"}
        # the crash after a crash comes just before the restart (it must not hand hints over)
        partition_ends |= {round(stops[a.id] - BEFORE_RESTART_S, 3) for a in actions
                           if a.f == "start" and a.fault == "crash" and not a.value.get("at_heal")}
        for a in actions:
            if a.f == "start" and a.value.get("at_heal"):
                at_heal += 1
                assert a.fault == "crash" and len(a.value["nodes"]) == 1
                assert a.at in partition_ends  # starts the moment a partition heals
    assert at_heal >= 10
    # after a crash, the one more node is one that stayed up (it holds the restarting ones' hints)
    after_crash = 0
    for seed in range(30):
        actions = plan(NODES5, ["crash"], 3.0, 60.0, random.Random(seed))
        crashed = {a.id: (a.at, set(a.value["nodes"])) for a in actions if a.f == "start"}
        ends = {a.id: a.at for a in actions if a.f == "stop"}
        for a in actions:
            if a.f == "start" and a.value.get("at_heal"):
                after_crash += 1
                before = [nodes for i, (at, nodes) in crashed.items()
                          if ends[i] == round(a.at + BEFORE_RESTART_S, 3)]
                assert len(before) == 1 and not before[0] & set(a.value["nodes"])
                assert a.value["target"] == HINT_HOLDER
                assert a.value["restarting"] == sorted(before[0])
                assert (ends[a.id] - a.at == pytest.approx(HINT_CRASH_INTERVALS * 3.0 + 0.01)
                        or ends[a.id] == 60.0)
    assert after_crash >= 10
    # a single kind of fault keeps its schedule: no heal crash without crash chosen
    assert not any(a.value.get("at_heal") for seed in range(10)
                   for a in plan(NODES5, ["partition"], 3.0, 60.0, random.Random(seed)))


def test_mix_is_all_less_what_the_store_does_not_offer() -> None:
    assert parse_faults("mix") == ["partition", "clock", "crash", "pause"]
    assert parse_faults("mix", frozenset({"partition", "crash", "pause"})) == [
        "partition", "crash", "pause"]
    assert parse_faults("crash-many", frozenset({"crash"})) == ["crash-many"]
