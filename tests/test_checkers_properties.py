"""Property tests: generated histories are valid, one corrupted read makes them invalid, and the
optimised search agrees with a brute-force definition of linearizability on small histories."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.generate import corrupt_one_read, generate
from checkers.history import Call, from_events, pair
from checkers.linearizability import Semantics, check_linearizable

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


# The sequential specifications, written here from the definitions in checkers/models.py with
# nothing of the checker's: plain JSON values in, a new state or NO (cannot happen) out. States:
# register: the value or None; kv: None, a string or a tuple; set: a frozenset; siblings-register:
# (newest write or None, frozenset of older values that may still be live).
Spec = Any
NO = object()  # the op cannot take effect (None is a state: the empty register)


def _register_answer(v: Any) -> Any:
    """A register read's answer: [] is empty, [x] is x, more siblings fit no register state."""
    if isinstance(v, list):
        return None if not v else v[0] if len(v) == 1 else ("several",)
    return v


def spec_init(model: str, initial: Any) -> Spec:
    if model in ("register", "cas-register"):
        return _register_answer(initial)
    if model == "kv":
        return tuple(initial) if isinstance(initial, list) else initial
    if model == "set":
        return frozenset(initial or [])
    v = initial[0] if isinstance(initial, list) and initial else initial
    return (None if v == [] else v, frozenset())


def spec_step(model: str, state: Spec, f: str, arg: Any, res: Any, completed: bool) -> Spec:
    """The next state, or NO when the op cannot take effect in `state` (a completed read must
    answer what the state holds; an uncompleted op's result is unknown)."""
    if model in ("register", "cas-register"):
        if f == "read":
            return state if _register_answer(res) == state else NO
        if f == "write":
            return arg
        if f == "cas":
            return arg[1] if state == arg[0] else NO
        if f == "cas failed":
            return state if state != arg[0] else NO
    if model == "kv":
        if f == "get":
            answer = tuple(res) if isinstance(res, list) else res
            return state if answer == state else NO
        if f == "put":
            return tuple(arg) if isinstance(arg, list) else arg
        if state is None:
            return arg if isinstance(arg, str) else (arg,)
        if isinstance(state, str) and isinstance(arg, str):
            return state + arg
        return state + (arg,) if isinstance(state, tuple) else NO
    if model == "set":
        if f == "read":
            return state if frozenset(res or []) == state else NO
        return state | {arg}
    newest, live = state  # siblings-register
    if f == "write":
        return (arg, live if newest is None else live | {newest})
    if f == "delete":
        if not isinstance(arg, list):  # which values it covered is unknown: any may live on
            return (None, live if newest is None else live | {newest})
        gone = frozenset(arg)
        return (None if newest in gone else newest, live - gone)
    seen = frozenset(res or [])
    if newest is None:
        return (None, seen) if seen <= live else NO
    rest = seen - {newest}
    return (newest, rest) if newest in seen and rest <= live else NO


READS = {"read", "get"}


def brute_force(calls: list[Call], model: str, sem: Semantics | None = None) -> bool:
    """Linearizability by definition: try every order that respects real time, with each info
    op placed anywhere after its invocation or nowhere, stepping `spec_step`. `sem`: a read of
    nil that is unknown fits every state; an observed failed cas must fit somewhere within its
    call; a failed op otherwise did nothing."""
    sem = sem or Semantics()
    ops = []  # (invoked at, must complete by or None, f, arg, result, completed)
    for c in calls:
        arg = c.invoke.value
        if c.type == "fail":
            if sem.failed_cas == "observe" and c.f == "cas":
                ops.append((c.pos, c.end_pos, "cas failed", arg, None, False))
            continue
        ok = c.type == "ok"
        if not ok and c.f in READS:
            continue  # a read whose answer is unknown constrains nothing
        res = c.complete.value if ok and c.complete else None
        if ok and c.f in READS and res is None and sem.nil_reads == "unknown":
            ops.append((c.pos, c.end_pos, None, None, None, True))  # matches any state
            continue
        if c.f == "delete":
            arg = res if ok else arg  # an ok delete names the values it covered
        ops.append((c.pos, c.end_pos if ok else None, c.f, arg, res, ok))

    def go(done: frozenset[int], state: Spec) -> bool:
        pending = [i for i, o in enumerate(ops) if o[1] is not None and i not in done]
        if not pending:
            return True
        first_return = min(ops[i][1] for i in pending)
        for i, (pos, _, f, arg, res, completed) in enumerate(ops):
            if i in done or pos > first_return:
                continue
            new = state if f is None else spec_step(model, state, f, arg, res, completed)
            if new is not NO and go(done | {i}, new):
                return True
        return False

    return go(frozenset(), spec_init(model, sem.initial))


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
