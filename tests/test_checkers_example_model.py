"""A new model needs only its required hooks (checkers/models.py): a FIFO queue, as Knossos has,
written with `name`, `fs`, `init` and `step` and nothing else, checked by the same search."""

from __future__ import annotations

from typing import Any

from checkers.history import from_events, pair
from checkers.linearizability import check_linearizable
from checkers.models import INVALID, Model


class Queue(Model):
    name = "queue"
    fs = {"enqueue": "enqueue", "dequeue": "dequeue"}
    init = ()

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        f, arg, res = op
        if f == "enqueue":
            return state + (arg,)
        if not state:  # an empty queue answers nothing
            return state if res is None else INVALID
        return state[1:] if res == state[0] else INVALID


def verdict(events: list[tuple[Any, ...]]) -> str:
    calls, _ = pair(from_events(events, key="q"))
    return check_linearizable(calls, Queue()).verdict


def test_concurrent_enqueues_may_come_out_in_either_order() -> None:
    both = [(1, "invoke", "enqueue", 1), (2, "invoke", "enqueue", 2),
            (1, "ok", "enqueue", 1), (2, "ok", "enqueue", 2)]
    assert verdict(both + [(3, "invoke", "dequeue", None), (3, "ok", "dequeue", 2),
                           (3, "invoke", "dequeue", None), (3, "ok", "dequeue", 1)]) == "valid"


def test_sequential_enqueues_come_out_in_order() -> None:
    events = [(1, "invoke", "enqueue", 1), (1, "ok", "enqueue", 1),
              (2, "invoke", "enqueue", 2), (2, "ok", "enqueue", 2),
              (3, "invoke", "dequeue", None), (3, "ok", "dequeue", 2)]
    calls, _ = pair(from_events(events, key="q"))
    v = check_linearizable(calls, Queue())
    assert v.verdict == "invalid"
    assert "dequeue" in v.summary  # the explanation names the op that could not follow


def test_an_indeterminate_enqueue_may_or_may_not_have_happened() -> None:
    maybe = [(1, "invoke", "enqueue", 7), (1, "info", "enqueue", 7)]
    seen = [(2, "invoke", "dequeue", None), (2, "ok", "dequeue", 7)]
    unseen = [(2, "invoke", "dequeue", None), (2, "ok", "dequeue", None)]
    assert verdict(maybe + seen) == "valid"
    assert verdict(maybe + unseen) == "valid"
    assert verdict(maybe + seen + [(2, "invoke", "dequeue", None),
                                   (2, "ok", "dequeue", 7)]) == "invalid"  # not twice
