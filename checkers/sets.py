"""Lost writes and sibling preservation for the `cart` and `set` workloads (Jepsen's set-full).

Every acknowledged add must be in the final reads. Each acknowledged element is:
- `stable`: every final read of its key contains it;
- `lost`: some final read that began after the acknowledgement lacks it (a lost write);
- `never_read`: no read of its key began after the acknowledgement (nothing can be said).
A non-final read that began after the acknowledgement and lacks the element is a `stale` read:
expected from a Dynamo store while replicas disagree, reported, not a violation. A read that
answers an element nobody tried to add, one whose add certainly failed, or one before its add was
invoked is invalid. When no read is marked `final`, the last read of each key stands in for it.
Without an acknowledged add, or without a read after one, the checker is not applicable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from checkers.faults import FaultTimeline
from checkers.history import Call
from checkers.models import as_set, freeze
from checkers.siblings import sibling_histogram, single_fraction
from checkers.stats import seconds, summary_ms
from checkers.verdict import INVALID, VALID, Verdict

LIST_CAP = 200  # evidence lists are capped; the counts are exact


def check_sets(calls: Sequence[Call], timeline: FaultTimeline | None = None) -> Verdict:
    """Classify every added element; invalid on a lost or impossible element."""
    timeline = timeline or FaultTimeline([])
    by_key: dict[Any, list[Call]] = defaultdict(list)
    for c in calls:
        if c.f in ("add", "read"):
            by_key[c.key].append(c)

    lost: list[dict[str, Any]] = []
    unexpected: list[dict[str, Any]] = []
    never_read: list[Any] = []
    stable = stale_elements = stale_reads = acked_total = 0
    first_seen_ns: list[int] = []
    keys_ev: dict[str, dict[str, Any]] = {}
    final_source = "final"

    for key, cs in by_key.items():
        adds = [c for c in cs if c.f == "add"]
        reads = sorted((c for c in cs if c.f == "read" and c.type == "ok"), key=lambda c: c.time)
        attempted: dict[Any, Call] = {}
        failed: set[Any] = set()
        acked: dict[Any, Call] = {}
        for a in adds:
            e = freeze(a.invoke.value)
            attempted.setdefault(e, a)
            if a.type == "ok":
                acked[e] = a
            elif a.type == "fail":
                failed.add(e)
        finals = [r for r in reads if r.final]
        if not finals and reads:
            final_source = "last"
            finals = [max(reads, key=lambda r: r.time)]
        read_sets = [(r, as_set(r.result)) for r in reads]

        # first appearance, and reads that answer the impossible
        first_seen: dict[Any, int] = {}
        for r, s in read_sets:
            assert r.end is not None
            fresh = s.difference(first_seen) if first_seen else s  # C speed, not a Python loop
            for e in fresh:
                first_seen[e] = r.end
                a = attempted.get(e)
                why = None
                if a is None:
                    why = "no operation ever added it"
                elif e in failed and e not in acked:
                    why = "its add failed, so it certainly did not happen"
                elif a.time > r.end:
                    why = "the read completed before the add was invoked"
                if why:
                    unexpected.append({"element": e, "read": r.to_dict(), "why": why})

        # sweep reads in invocation order against the acknowledged-so-far set
        acks = sorted(acked.items(), key=lambda kv: kv[1].end)
        k_ack = 0
        acked_before: set[Any] = set()
        stale_of: set[Any] = set()
        missing_final: dict[Any, int] = defaultdict(int)
        final_ids = {id(r) for r in finals}
        for r, s in read_sets:
            while k_ack < len(acks) and acks[k_ack][1].end < r.time:
                acked_before.add(acks[k_ack][0])
                k_ack += 1
            missing = acked_before - s
            if id(r) in final_ids:
                for e in missing:
                    missing_final[e] += 1
            elif missing:
                stale_reads += 1
                stale_of |= missing
        read_after = acked_before  # acknowledged before some read began
        key_lost = key_stable = key_never = 0
        for e, a in acked.items():
            acked_total += 1
            if e not in read_after:
                never_read.append(e)
                key_never += 1
                continue
            if missing_final.get(e):
                key_lost += 1
                lost.append({
                    "element": e, "key": key, "add": a.to_dict(),
                    "faults": timeline.active(a.time, a.end),
                    "missing_from_final_reads": missing_final[e],
                    "final_reads": len(finals),
                    "ever_read": e in first_seen,
                })
                continue
            if not any(r.time > (a.end or 0) for r in finals):
                never_read.append(e)
                key_never += 1
                continue
            key_stable += 1
            if e in first_seen:
                assert a.end is not None
                first_seen_ns.append(max(0, first_seen[e] - a.end))
        stable += key_stable
        stale_elements += len(stale_of & set(acked))
        keys_ev["" if key is None else str(key)] = {
            "acknowledged": len(acked), "stable": key_stable, "lost": key_lost,
            "never_read": key_never, "reads": len(reads), "final_reads": len(finals),
        }

    hist = sibling_histogram(calls)
    evidence: dict[str, Any] = {
        "lost": lost[:LIST_CAP], "lost_count": len(lost), "stable_count": stable,
        "never_read": never_read[:LIST_CAP], "never_read_count": len(never_read),
        "stale_count": stale_elements, "stale_reads": stale_reads,
        "unexpected": unexpected[:LIST_CAP], "unexpected_count": len(unexpected),
        "acknowledged_count": acked_total,
        "latencies": {"first_seen_ms": summary_ms(first_seen_ns)},
        "sibling_histogram": hist, "single_sibling_fraction": single_fraction(hist),
        "final_reads": final_source, "keys": keys_ev,
    }
    if lost:
        x = lost[0]
        add = x["add"]
        during = f" during {', '.join(x['faults'])}" if x["faults"] else ""
        return Verdict(INVALID, (
            f"Let A be the add of {x['element']!r} to key {x['key']!r} by process "
            f"{add['process']}, acknowledged at {seconds(add['end'])}{during}. Then "
            f"{x['missing_from_final_reads']} of the {x['final_reads']} final read(s) that began "
            f"after A lack {x['element']!r}, so an acknowledged write was lost "
            f"({len(lost)} of {acked_total} acknowledged adds lost)."), evidence)
    if unexpected:
        u = unexpected[0]
        return Verdict(INVALID, (
            f"Let R be the read by process {u['read']['process']} completed at "
            f"{seconds(u['read']['end'])}. Then R answered {u['element']!r}, but {u['why']} "
            f"({len(unexpected)} impossible element(s) in all)."), evidence)
    if acked_total == 0:
        return Verdict.not_applicable("No add was acknowledged, so there is nothing that could "
                                      "be lost.", evidence)
    if stable == 0:
        return Verdict.not_applicable((
            f"None of the {acked_total} acknowledged adds was followed by a read, so whether "
            "they survived is not known."), evidence)
    note = f", {len(never_read)} never read" if never_read else ""
    stale = (f"; {stale_reads} earlier read(s) were stale, as a Dynamo store may be while "
             "replicas disagree") if stale_reads else ""
    return Verdict(VALID, (
        f"All {stable} acknowledged adds that a final read could see are present in the final "
        f"reads{note}{stale}."), evidence)
