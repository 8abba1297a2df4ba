"""Convergence: after heal and quiesce, every replica of every key holds the same version set.

Input is `replicas.json` (docs/history.md): per key, the preference list and each replica's
versions as read from `/admin/replicas/{key}`. Two replicas agree when their sets of version ids
are equal. Replicas that could not be asked (`ok: false`) make the answer for that key unknown.
Without `replicas.json` (a bare history), or when it lists no key, there is nothing to compare: the
checker is not applicable.
"""

from __future__ import annotations

from typing import Any

from checkers.verdict import INVALID, UNKNOWN, VALID, Verdict

LIST_CAP = 200


def _ids(replica: dict[str, Any]) -> list[str]:
    return sorted(str(v.get("id")) for v in replica.get("versions") or [] if isinstance(v, dict))


def check_convergence(replicas: dict[str, Any] | None) -> Verdict:
    """Compare the replicas of every key; invalid when two replicas hold different versions."""
    if replicas is None:
        return Verdict.not_applicable(
            "There is no replicas.json (the replicas' final state), so convergence was not "
            "checked.", {"divergent": {}, "converged_after_ms": None, "keys_checked": 0,
                         "reason": "no replicas.json"})
    if not isinstance(replicas, dict) or not isinstance(replicas.get("keys", {}), dict):
        raise ValueError("replicas.json must be an object with a 'keys' object")
    heal, conv = replicas.get("heal_time"), replicas.get("converged_time")
    after = None
    if isinstance(heal, int | float) and isinstance(conv, int | float):
        after = round(max(0.0, conv - heal) / 1e6, 3)
    divergent: dict[str, dict[str, list[str]]] = {}
    unreachable: dict[str, list[str]] = {}
    checked = 0
    for key, entry in sorted(replicas.get("keys", {}).items()):
        reps = entry.get("replicas") or {}
        if not reps and entry.get("error"):
            unreachable.setdefault(key, []).append(f"(no replica view: {entry['error']})")
            continue
        prefs = entry.get("preference_list") or []
        # the preference list names the replicas; fallback nodes holding hints are not replicas
        names = [n for n in prefs if n in reps] or sorted(reps)
        sets: dict[str, list[str]] = {}
        for node in names:
            rep = reps[node]
            if not isinstance(rep, dict) or not rep.get("ok", False):
                unreachable.setdefault(key, []).append(node)
                continue
            sets[node] = _ids(rep)
        if len(sets) < 1:
            continue
        checked += 1
        if len({tuple(v) for v in sets.values()}) > 1:
            divergent[key] = sets
    evidence: dict[str, Any] = {
        "divergent": dict(list(divergent.items())[:LIST_CAP]), "divergent_count": len(divergent),
        "converged_after_ms": after, "keys_checked": checked, "unreachable": unreachable,
        "heal_time": heal, "converged_time": conv,
    }
    if divergent:
        key, sets = next(iter(divergent.items()))
        (a, va), (b, vb) = _two_different(sets)
        return Verdict(INVALID, (
            f"Let K be key {key!r}. Then replica {a} holds versions {va} while replica {b} holds "
            f"{vb} after heal and quiesce, so the replicas did not converge "
            f"({len(divergent)} of {checked} keys diverge)."), evidence)
    if unreachable:
        return Verdict(UNKNOWN, (
            f"The replicas that answered agree on all {checked} keys, but "
            f"{sum(map(len, unreachable.values()))} replica(s) of {len(unreachable)} key(s) could "
            "not be asked, so convergence is not proven."), evidence)
    if checked == 0:
        return Verdict.not_applicable("replicas.json lists no keys, so convergence was not "
                                      "checked.", evidence)
    when = f", {after} ms after the heal" if after is not None else ""
    return Verdict(VALID, f"Every replica of all {checked} keys holds the same versions{when}.",
                   evidence)


def _two_different(sets: dict[str, list[str]]) -> tuple[tuple[str, list[str]], ...]:
    items = list(sets.items())
    first = items[0]
    for other in items[1:]:
        if other[1] != first[1]:
            return first, other
    return first, items[1]
