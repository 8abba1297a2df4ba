"""The consistent-hash ring: Q partitions, balanced claims, preference lists.

Keys hash (MD5, 128 bits) onto a ring cut into Q equal partitions. Claims are built by adding the
nodes one at a time in cluster-file order: each newcomer takes partitions from the nodes that hold
the most until every node holds floor(Q/S) or ceil(Q/S). So adding a node moves only the partitions
it takes, about Q/(S+1), and every node computes the same ring from the same node list.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass


@functools.lru_cache(maxsize=1 << 16)  # every request hashes its key, often more than once
def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")


def claim(nodes: Sequence[str], q: int) -> list[str]:
    """Owner of each partition for these nodes (in join order)."""
    if not nodes:
        raise ValueError("a ring needs at least one node")
    if q < len(nodes) or q & (q - 1):
        raise ValueError(f"q must be a power of two >= the number of nodes, got {q}")
    owners = [nodes[0]] * q
    for s, newcomer in enumerate(nodes[1:], start=2):
        target = q // s
        counts: dict[str, int] = {}
        for o in owners:
            counts[o] = counts.get(o, 0) + 1
        mine = 0
        while mine < target:
            donor = max(counts, key=lambda n: (counts[n], -nodes.index(n)))
            p = _pick(owners, donor, newcomer)
            owners[p] = newcomer
            counts[donor] -= 1
            mine += 1
    return owners


def _pick(owners: list[str], donor: str, newcomer: str) -> int:
    """A partition of `donor` to hand over, preferring ones whose neighbours are not `newcomer`
    (so consecutive partitions belong to distinct nodes and preference lists spread load)."""
    q = len(owners)
    best, best_score = -1, -1
    for p in range(q):
        if owners[p] != donor:
            continue
        score = (owners[p - 1] != newcomer) + (owners[(p + 1) % q] != newcomer)
        if score > best_score:
            best, best_score = p, score
            if score == 2:
                break
    return best


def _walk(owners: Sequence[str], partition: int, count: int) -> list[str]:
    seen: list[str] = []
    q = len(owners)
    for i in range(q):
        owner = owners[(partition + i) % q]
        if owner not in seen:
            seen.append(owner)
            if len(seen) == count:
                break
    return seen


def _vnode_walk(owners: Sequence[str], partition: int, n: int, count: int) -> list[str]:
    q = len(owners)
    pref = [owners[(partition + i) % q] for i in range(n)]
    return pref + [o for o in _walk(owners, partition, count) if o not in pref]


@dataclass(frozen=True)
class Ring:
    nodes: tuple[str, ...]
    q: int
    n: int
    owners: tuple[str, ...]
    walks: tuple[tuple[str, ...], ...]  # per partition: distinct nodes clockwise

    @classmethod
    def build(cls, nodes: Sequence[str], q: int, n: int, vnode_preflists: bool = False) -> Ring:
        """`vnode_preflists` seeds the bug `preflist-vnodes` (docs/bugs.md): the preference list
        is the owners of the next N partitions, so a node that owns two of them is named twice
        and the key has fewer than N distinct copies (Riak's target_n_val violation)."""
        if not 1 <= n <= len(nodes):
            raise ValueError(f"n must be between 1 and the number of nodes ({len(nodes)}), got {n}")
        owners = claim(nodes, q)
        walks = tuple(tuple(_vnode_walk(owners, p, n, len(nodes)) if vnode_preflists
                            else _walk(owners, p, len(nodes))) for p in range(q))
        return cls(tuple(nodes), q, n, tuple(owners), walks)

    def partition(self, key: str) -> int:
        return key_hash(key) * self.q >> 128

    def walk(self, partition: int) -> list[str]:
        """Every distinct node clockwise from `partition`: preference list, then fallbacks."""
        return list(self.walks[partition])

    def preference_list(self, key: str) -> list[str]:
        return self.walk(self.partition(key))[: self.n]

    def fallbacks(self, key: str) -> list[str]:
        return self.walk(self.partition(key))[self.n:]

    def partitions_owned(self, node: str) -> int:
        return sum(1 for o in self.owners if o == node)

    def summary(self) -> dict:
        return {"q": self.q, "n": self.n,
                "partitions_owned": {nd: self.partitions_owned(nd) for nd in self.nodes}}
