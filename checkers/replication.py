"""Replication: after heal and quiesce, every key is held by N distinct nodes.

A store that keeps a key on fewer nodes than it promises passes every history checker until the
few machines that hold it die together. This checker reads the replicas' final views
(`replicas.json`, as the convergence checker does) and counts, for every key that still holds a
value, the distinct nodes of its preference list that hold any version of it. A preference list
that names a node twice, or a replica that never got or dropped the key, leaves fewer than N;
a replica that holds other versions than its peers is a copy all the same (that divergence is
the convergence checker's). Keys whose final versions are all tombstones are skipped:
the reaper removes them replica by replica. Replicas that could not be asked make a short key
unknown rather than invalid.
"""

from __future__ import annotations

from typing import Any

from checkers.verdict import INVALID, UNKNOWN, VALID, Verdict

LIST_CAP = 200


def _versions(replica: dict[str, Any]) -> dict[str, bool]:
    """version id -> is it a tombstone."""
    return {str(v.get("id")): bool(v.get("tombstone")) for v in replica.get("versions") or []
            if isinstance(v, dict)}


def check_replication(replicas: dict[str, Any] | None, n: int | None) -> Verdict:
    """Invalid when a key that holds a value is on fewer than `n` distinct nodes; when the test
    does not say N (a bare replicas.json), the longest preference list in it stands for N."""
    if replicas is None:
        return Verdict.not_applicable(
            "There is no replicas.json (the replicas' final state), so the number of copies "
            "was not checked.", {"short": {}, "keys_checked": 0, "reason": "no replicas.json"})
    if not isinstance(replicas, dict) or not isinstance(replicas.get("keys", {}), dict):
        raise ValueError("replicas.json must be an object with a 'keys' object")
    if n is None:
        n = max((len(e.get("preference_list") or []) for e in replicas.get("keys", {}).values()
                 if isinstance(e, dict)), default=0)
    short: dict[str, dict[str, Any]] = {}
    unknown: dict[str, dict[str, Any]] = {}
    checked = 0
    for key, entry in sorted(replicas.get("keys", {}).items()):
        reps = entry.get("replicas") or {}
        prefs = entry.get("preference_list") or sorted(reps)
        distinct = list(dict.fromkeys(prefs))
        answered = {node: _versions(reps[node]) for node in distinct
                    if isinstance(reps.get(node), dict) and reps[node].get("ok")}
        final: dict[str, bool] = {}
        for held in answered.values():
            final.update(held)
        if not final or all(final.values()):
            continue  # never written, or deleted (tombstones are reaped one replica at a time)
        checked += 1
        holders = sorted(node for node, held in answered.items() if held)
        if len(holders) >= n:
            continue
        record = {"holders": holders, "preference_list": prefs,
                  "missing": sorted(set(distinct) - set(holders))}
        silent = [node for node in distinct if node not in answered]
        if len(holders) + len(silent) >= n:
            unknown[key] = {**record, "not_asked": silent}
        else:
            short[key] = record
    evidence: dict[str, Any] = {"n": n, "keys_checked": checked,
                                "short": dict(list(short.items())[:LIST_CAP]),
                                "short_count": len(short),
                                "unknown": dict(list(unknown.items())[:LIST_CAP])}
    if short:
        key, rec = next(iter(short.items()))
        why = (f"its preference list {rec['preference_list']} names only "
               f"{len(set(rec['preference_list']))} distinct nodes"
               if len(set(rec["preference_list"])) < n else
               f"{', '.join(rec['missing'])} lack{'s' if len(rec['missing']) == 1 else ''} it")
        return Verdict(INVALID, (
            f"Key {key!r} is held by {len(rec['holders'])} node(s) "
            f"({', '.join(rec['holders']) or 'none'}) after heal and quiesce, fewer than N = {n}: "
            f"{why} ({len(short)} of {checked} keys are short)."), evidence)
    if unknown:
        return Verdict(UNKNOWN, (
            f"{len(unknown)} key(s) are held by fewer than N = {n} of the replicas that answered, "
            "and the others could not be asked, so the number of copies is not proven."),
            evidence)
    if checked == 0:
        return Verdict.not_applicable("No key holds a value in replicas.json, so the number of "
                                      "copies was not checked.", evidence)
    return Verdict(VALID, f"All {checked} keys that hold a value are on N = {n} distinct nodes.",
                   evidence)
