"""Small numeric helpers shared by the checkers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted, non-empty sequence."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def summary_ms(values_ns: Sequence[float]) -> dict[str, Any]:
    """count, p50, p95, p99, p999, max (milliseconds) of durations given in nanoseconds."""
    if not values_ns:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "p999": None, "max": None}
    xs = sorted(values_ns)
    out: dict[str, Any] = {"count": len(xs)}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
        out[name] = round(quantile(xs, q) / 1e6, 3)
    out["max"] = round(xs[-1] / 1e6, 3)
    return out


def seconds(ns: float) -> str:
    """A time since the test began, for sentences."""
    return f"{ns / 1e9:.3f} s" if ns >= 1e9 else f"{ns / 1e6:.3f} ms"
