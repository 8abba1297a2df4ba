"""Partition shapes as grudges: node -> the set of nodes whose frames it drops.

Pure functions of the node list and a seeded random source, after Jepsen's `nemesis.combined`.
A grudge says nothing about how it is enforced; the platform does that.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Grudge = dict[str, frozenset[str]]

PARTITION_KINDS = ("halves", "isolate", "majorities-ring", "bridge", "one-way")


def complete(components: Sequence[Sequence[str]]) -> Grudge:
    """Every node drops every node outside its own component (a clean, symmetric cut)."""
    everyone = {node for comp in components for node in comp}
    return {
        node: frozenset(everyone - set(comp)) for comp in components for node in comp
        if everyone - set(comp)
    }


def halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Shuffle, then cut into a smaller and a larger half."""
    shuffled = _shuffled(nodes, rng)
    cut = len(shuffled) // 2
    return complete([shuffled[:cut], shuffled[cut:]])


def isolate(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """One random node on its own, the rest together."""
    victim = rng.choice(list(nodes))
    return complete([[victim], [n for n in nodes if n != victim]])


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node sees a majority, but no two nodes see the same majority.

    Nodes are placed on a shuffled ring; each node keeps the majority window centred on it and
    drops everyone outside that window.
    """
    ring = _shuffled(nodes, rng)
    size = len(ring)
    majority = size // 2 + 1
    grudge: Grudge = {}
    for start in range(size):
        window = [ring[(start + i) % size] for i in range(majority)]
        centre = window[len(window) // 2]
        dropped = frozenset(ring) - set(window)
        if dropped:
            grudge[centre] = dropped
    return grudge


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves that cannot talk to each other, and one node in the middle that sees both."""
    shuffled = _shuffled(nodes, rng)
    if len(shuffled) < 3:
        return complete([shuffled[:1], shuffled[1:]]) if len(shuffled) == 2 else {}
    cut = len(shuffled) // 2
    left, right = shuffled[:cut], shuffled[cut + 1 :]  # shuffled[cut] is the bridge
    grudge: Grudge = {n: frozenset(right) for n in left}
    grudge.update({n: frozenset(left) for n in right})
    return grudge


def one_way(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """One node stops hearing the others, while they still hear it (an asymmetric fault)."""
    victim = rng.choice(list(nodes))
    others = frozenset(n for n in nodes if n != victim)
    return {victim: others} if others else {}


GRUDGES: dict[str, Callable[[Sequence[str], random.Random], Grudge]] = {
    "halves": halves,
    "isolate": isolate,
    "majorities-ring": majorities_ring,
    "bridge": bridge,
    "one-way": one_way,
}


# Shapes aimed at a role rather than a random node (Jepsen's :primaries): the schedule isolates
# a stand-in, and the harness puts the node that holds the role at that moment in its place (it
# asks the store). Chosen only when named, never by `all`.
TARGETED = {"isolate-primary": "primary"}


def isolate_node(nodes: Sequence[str], victim: str) -> Grudge:
    """`victim` on its own, the rest together."""
    return complete([[victim], [n for n in nodes if n != victim]])


def grudge_to_json(grudge: Grudge) -> dict[str, list[str]]:
    """A JSON-ready form with sorted lists, stable for histories and tests."""
    return {node: sorted(dropped) for node, dropped in sorted(grudge.items())}


def _shuffled(nodes: Sequence[str], rng: random.Random) -> list[str]:
    out = list(nodes)
    rng.shuffle(out)
    return out
