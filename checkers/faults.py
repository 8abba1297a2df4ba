"""When each fault was active, from the nemesis records of a history: the one builder of fault
intervals, for the checkers and for the report's bands."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkers.history import Op

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    start: float  # ns
    end: float  # ns; INF when never ended (the report clips it to the history's end)
    value: Any = None  # what the start step said: the partition's grudge, the skew, the nodes
    healed: bool = True  # False when the history ended with the fault still on

    @property
    def label(self) -> str:
        """The fault's name, with the kind its value names: "partition (isolate)"."""
        if isinstance(self.value, dict):
            kind = self.value.get("kind") or self.value.get("type")
            if kind:
                return f"{self.name} ({kind})"
        return self.name


def _fault_name(op: Op) -> tuple[str, str | None]:
    """(action, fault): action is start|stop|heal|other. Understands `f: start, fault: X` (ours)
    and Jepsen's `:start-partition` / `:stop-partition` style."""
    f = op.f
    if f in ("start", "stop"):
        return f, op.fault or "nemesis"
    if f == "heal":
        return "heal", None
    for action in ("start", "stop"):
        prefix = action + "-"
        if f.startswith(prefix):
            return action, f[len(prefix):]
    return "other", op.fault


def _actions(nemesis: Sequence[Op]) -> list[tuple[str, str | None, int, int, Any]]:
    """(action, fault, first time, last time, value) per nemesis step. A step is written as two
    records (invocation then completion, both `info` in our histories, `invoke` then `info` in
    Jepsen's) that share `f` and `fault`; a lone record is a step of its own. The value is the
    completion's, else the invocation's."""
    out = []
    i = 0
    while i < len(nemesis):
        op = nemesis[i]
        nxt = nemesis[i + 1] if i + 1 < len(nemesis) else None
        action, name = _fault_name(op)
        if nxt is not None and nxt.f == op.f and nxt.fault == op.fault and nxt.type != "invoke":
            value = nxt.value if nxt.value is not None else op.value
            out.append((action, name, op.time, nxt.time, value))
            i += 2
        else:
            out.append((action, name, op.time, op.time, op.value))
            i += 1
    return out


def fault_intervals(nemesis: Sequence[Op]) -> list[Fault]:
    """Intervals of each fault: from the start of the step that began it to the end of the stop
    (or heal) step that ended it; a fault started again while on stays one interval; a fault
    never ended lasts to infinity (`healed` False)."""
    active: dict[str, tuple[float, Any]] = {}
    out: list[Fault] = []
    for action, name, t0, t1, value in _actions(nemesis):
        if action == "start" and name is not None:
            active.setdefault(name, (t0, value))
        elif action == "stop" and name in active:
            start, v = active.pop(name)
            out.append(Fault(name, start, t1, v))
        elif action == "heal":
            out.extend(Fault(n, start, t1, v) for n, (start, v) in active.items())
            active.clear()
    out.extend(Fault(n, start, INF, v, healed=False) for n, (start, v) in active.items())
    out.sort(key=lambda f: (f.start, f.name))
    return out


class FaultTimeline:
    """Answers "which faults were active during [t0, t1]?" quickly."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.faults = sorted(faults, key=lambda f: f.start)
        self._starts = [f.start for f in self.faults]

    def active(self, t0: float, t1: float | None) -> list[str]:
        """Names of the faults whose interval overlaps [t0, t1] (t1 None: an open-ended op)."""
        hi = INF if t1 is None else t1
        k = bisect.bisect_right(self._starts, hi)
        names = {f.name for f in self.faults[:k] if f.end >= t0}
        return sorted(names)

    def __bool__(self) -> bool:
        return bool(self.faults)
