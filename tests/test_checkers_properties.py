"""Property tests: generated histories are valid, one corrupted read makes them invalid, and the
optimised search agrees with a brute-force definition of linearizability on small histories."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.generate import corrupt_one_read, generate
from checkers.history import Call, from_events, pair
from checkers.linearizability import Semantics, check_linearizable
from checkers.models import INVALID, get_model

MODELS = ["register", "cas-register", "set", "siblings-register", "kv"]

params = st.fixed_dictionaries({
    "model": st.sampled_from(MODELS),
    "n_ops": st.integers(1, 60),
    "processes": st.integers(1, 6),
    "keys": st.integers(1, 3),
    "info_rate": st.sampled_from([0.0, 0.1, 0.3]),
    "seed": st.integers(0, 10_000),
    "read_lists": st.booleans(),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params)
def test_generated_histories_are_valid_and_corrupted_ones_invalid(p: dict[str, Any]) -> None:
    ops = generate(**p)
    v = check_linearizable(pair(ops)[0], p["model"])
    assert v.verdict == "valid", v.summary
    if p["model"] == "cas-register":  # the generator's failed cas saw another value: observed
        v = check_linearizable(pair(ops)[0], p["model"], semantics=Semantics(failed_cas="observe"))
        assert v.verdict == "valid", v.summary
    bad = corrupt_one_read(ops, p["seed"])
    if bad is not None:
        v = check_linearizable(pair(bad)[0], p["model"])
        assert v.verdict == "invalid", v.summary


def brute_force(calls: list[Call], model_name: str, sem: Semantics | None = None) -> bool:
    """Linearizability by definition: try every order that respects real time, with each info
    op placed anywhere after its invocation or nowhere. `sem`: a read of nil that is unknown
    fits every state; an observed failed cas must fit somewhere within its call."""
    sem = sem or Semantics()
    model = get_model(model_name, sem.initial)
    ops = []
    for c in calls:
        if c.type == "fail":
            failed = model.prepare_failed(c.f, c.invoke.value) \
                if sem.failed_cas == "observe" else None
            if failed is not None:
                ops.append((c.pos, c.end_pos, failed, True))
            continue
        ok = c.type == "ok"
        if not ok and model.canonical(c.f) in model.readonly:
            continue  # a read whose answer is unknown constrains nothing
        result = c.complete.value if ok and c.complete else None
        if ok and result is None and sem.nil_reads == "unknown" \
                and model.canonical(c.f) in model.readonly:
            ops.append((c.pos, c.end_pos, None, True))  # matches any state
            continue
        op = model.prepare(c.f, c.invoke.value, result, ok)
        ops.append((c.pos, c.end_pos if ok else None, op, ok))

    def go(done: frozenset[int], state: Any) -> bool:
        pending_ok = [i for i, o in enumerate(ops) if o[3] and i not in done]
        if not pending_ok:
            return True
        first_return = min(ops[i][1] for i in pending_ok)
        for i, (pos, _, op, _) in enumerate(ops):
            if i in done or pos > first_return:
                continue
            new = state if op is None else model.step(state, op)
            if new is not INVALID and go(done | {i}, new):
                return True
        return False

    return go(frozenset(), model.init)


def small_history(draw: Any, model: str) -> list[Any]:
    fs = {"register": ["read", "write"], "cas-register": ["read", "write", "cas"],
          "set": ["read", "add"], "siblings-register": ["read", "write", "delete"],
          "kv": ["get", "put", "append"]}[model]
    n_proc = draw(st.integers(1, 3))
    per_proc = [draw(st.lists(st.sampled_from(fs), min_size=0, max_size=3))
                for _ in range(n_proc)]
    counter = iter(range(1, 100))
    val = st.integers(0, 2)
    events: list[tuple[Any, ...]] = []
    # each process: invoke then complete, interleaved at random with the others
    cursors = [0] * n_proc
    open_: dict[int, tuple[str, Any]] = {}
    pid = list(range(n_proc))
    while any(cursors[p] < len(per_proc[p]) for p in range(n_proc)) or open_:
        choices = [p for p in range(n_proc) if p in open_ or cursors[p] < len(per_proc[p])]
        p = draw(st.sampled_from(choices))
        if p in open_:
            f, arg = open_.pop(p)
            typ = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
            if typ == "ok" and f in ("read", "get") and draw(st.integers(0, 5)) == 0:
                res = None  # a read of nil: absent, or unknown as Knossos has it
            elif typ == "ok" and f == "delete":
                res = sorted(draw(st.sets(st.integers(1, 4), max_size=2)))
            elif typ == "ok" and f in ("read", "get"):
                if model == "set":
                    res: Any = sorted(draw(st.sets(st.integers(1, 4), max_size=3)))
                elif model == "siblings-register":
                    res = sorted(draw(st.sets(st.integers(1, 4), max_size=2)))
                elif model == "kv":
                    res = draw(st.one_of(st.none(), st.lists(st.integers(1, 4), max_size=3)))
                else:
                    res = draw(st.one_of(st.none(), val))
            else:
                res = arg
            events.append((pid[p], typ, f, res))
            if typ == "info":
                pid[p] += 10  # a retired process gets a new id
        else:
            f = per_proc[p][cursors[p]]
            cursors[p] += 1
            if f in ("read", "get", "delete"):
                arg = None
            elif f == "cas":
                arg = [draw(val), draw(val)]
            elif model in ("register", "cas-register"):
                arg = draw(val)
            elif model == "kv" and f == "put":
                arg = draw(st.lists(st.integers(1, 4), max_size=1))
            else:
                arg = next(counter) % 5
            open_[p] = (f, arg)
            events.append((pid[p], "invoke", f, arg))
    return events


INITIALS = {"register": [0, 1], "cas-register": [0, 1], "set": [[1]],
            "siblings-register": [1], "kv": ["", [1]]}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(MODELS))
def test_search_agrees_with_brute_force(data: Any, model: str) -> None:
    events = small_history(data.draw, model)
    sem = Semantics(initial=data.draw(st.sampled_from([None, *INITIALS[model]])),
                    nil_reads=data.draw(st.sampled_from(["absent", "unknown"])),
                    failed_cas=data.draw(st.sampled_from(["ignore", "observe"])))
    calls, _ = pair(from_events(events, key="k"))
    expected = brute_force(calls, model, sem)  # no call at all: trivially linearizable
    got = check_linearizable(calls, model, semantics=sem).verdict
    assert got == ("valid" if expected else "invalid"), (events, sem, got)
