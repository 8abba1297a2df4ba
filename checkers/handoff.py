"""Hinted handoff: after heal and quiesce, no node still holds hints for its peers.

A write that a fallback took for an unreachable primary is kept there as a hint until it is
handed to that primary. After the heal every node is up and reachable, and the quiesce waits
(bounded) until every node's `hints_pending` counter is 0 (`replicas.json` `hints`, written by
the harness from `/admin/stats`, docs/history.md). A hint still held then was never delivered:
the owner depends on read repair or anti-entropy to learn the write, which a Dynamo user does not
expect, and the fallback's disk fills. A node that did not answer makes the verdict unknown; a
store that keeps no hints (no `hints` entry: etcd, Redis, a bare history) is not applicable, and
so is a test whose store was told to hand off less often than the wait could see
(`handoff_interval_ms` longer than a third of it: the smoke suite turns handoff off that way to
test the other repairs alone).
"""

from __future__ import annotations

from typing import Any

from checkers.verdict import INVALID, UNKNOWN, VALID, Verdict

ROUNDS = 3  # handoff rounds the wait must have spanned before hints still held mean a bug


def check_handoff(replicas: dict[str, Any] | None, interval_ms: int | None = None) -> Verdict:
    """Invalid when a node still holds hints after the bounded wait for them to drain, a wait
    of at least ROUNDS handoff intervals (`interval_ms`, the store's setting when known)."""
    hints = replicas.get("hints") if isinstance(replicas, dict) else None
    if not isinstance(hints, dict) or not isinstance(hints.get("pending"), dict):
        return Verdict.not_applicable(
            "No node reported pending hints after the heal (a store without hinted handoff, or "
            "no replicas.json), so hinted handoff was not checked.", {"pending": {}})
    pending: dict[str, Any] = hints["pending"]
    waited = hints.get("waited_ms")
    held = {n: c for n, c in sorted(pending.items()) if isinstance(c, int) and c > 0}
    silent = sorted(n for n, c in pending.items() if not isinstance(c, int))
    evidence = {"pending": pending, "held": held, "silent": silent, "waited_ms": waited,
                "drained_time": hints.get("drained_time")}
    after = f" {waited} ms after the heal" if isinstance(waited, int) else " after the quiesce"
    if held and isinstance(waited, int) and interval_ms and waited < ROUNDS * interval_ms:
        return Verdict.not_applicable(
            f"{sum(held.values())} hint(s) are still held{after}, but the store hands hints "
            f"off only every {interval_ms} ms, so the wait could not tell a missed delivery "
            "from one not yet due.", evidence)
    if held:
        node, count = next(iter(held.items()))
        return Verdict(INVALID, (
            f"Node {node} still holds {count} hint(s){after}, with every node up and "
            f"reachable, so hinted handoff did not deliver them to their owners "
            f"({sum(held.values())} hint(s) on {len(held)} node(s)). Those owners rely on read "
            "repair or anti-entropy to learn the writes."), evidence)
    if silent:
        return Verdict(UNKNOWN, (
            f"{', '.join(silent)} did not say how many hints they hold{after}, so hinted "
            "handoff is not proven complete; the other nodes hold none."), evidence)
    return Verdict(VALID, f"No node holds a hint{after}: every hint reached its owner.",
                   evidence)
