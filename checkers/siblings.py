"""How many siblings reads saw (the Dynamo paper, section 6.3: 99.94% of reads saw one version)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from checkers.history import Call


def sibling_histogram(calls: Sequence[Call]) -> dict[str, Any]:
    """{"1": n, "2": m, ...} over ok reads that report `siblings` (absent keys: none seen)."""
    counts: Counter[int] = Counter()
    for c in calls:
        done = c.complete
        if done is not None and done.type == "ok" and c.f == "read" and done.siblings is not None:
            counts[done.siblings] += 1
    return {str(k): counts[k] for k in sorted(counts)}


def single_fraction(hist: dict[str, Any]) -> float | None:
    """The fraction of reads (that saw anything) that saw exactly one version."""
    seen = sum(v for k, v in hist.items() if k != "0")
    return None if not seen else hist.get("1", 0) / seen
