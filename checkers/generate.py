"""Histories made by running a sequential model under random real-time overlap.

Each operation gets an invocation time, a completion time and a linearization point between the
two; the model is applied in linearization-point order to compute every result, so the history is
linearizable by construction. An `info` operation takes effect at its point with probability 1/2
(or never), and its process is retired, as the harness does. Used by tests and benchmarks.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any

from checkers.history import Op

MODELS = ("register", "cas-register", "set", "siblings-register", "kv")


@dataclass
class _Planned:
    process: int
    key: str
    f: str
    arg: Any
    invoke: int
    complete: int
    lin: int
    info: bool
    result: Any = None
    outcome: str = "ok"


def _choose(rng: random.Random, model: str, counter: list[int], values: int,
            strings: bool) -> tuple[str, Any]:
    r = rng.random()
    if model in ("register", "siblings-register"):
        if r < 0.5:
            counter[0] += 1
            return "write", counter[0]
        return "read", None
    if model == "cas-register":
        if r < 1 / 3:
            return "read", None
        if r < 2 / 3:
            return "write", rng.randrange(values)
        return "cas", [rng.randrange(values), rng.randrange(values)]
    if model == "set":
        if r < 0.6:
            counter[0] += 1
            return "add", counter[0]
        return "read", None
    if model == "kv":
        counter[0] += 1
        if r < 0.4:
            return "get", None
        if r < 0.6:
            return "put", f"p{counter[0]} " if strings else [counter[0]]
        return "append", f"x{counter[0]} " if strings else counter[0]
    raise ValueError(f"no generator for model {model!r}; choose from {', '.join(MODELS)}")


def _apply(model: str, state: Any, p: _Planned, effective: bool) -> Any:
    """Apply p at its point; fill in its result and outcome; return the new state."""
    f, arg = p.f, p.arg
    if f in ("read", "get"):
        if model == "set":
            p.result = sorted(state)
        elif model == "siblings-register":
            p.result = [] if state is None else [state]
        elif model == "kv":
            p.result = state if state is None or isinstance(state, str) else list(state)
        else:
            p.result = state
        return state
    p.result = arg
    if not effective:
        return state
    if f in ("write", "put"):
        return tuple(arg) if model == "kv" and isinstance(arg, list) else arg
    if f == "cas":
        if state == arg[0]:
            return arg[1]
        p.outcome = "fail"
        p.result = arg
        return state
    if f == "add":
        return state | {arg}
    if f == "append":
        return state + arg if isinstance(arg, str) else (state or ()) + (arg,)
    raise AssertionError(f)


def generate(model: str, n_ops: int, processes: int, keys: int = 1, info_rate: float = 0.0,
             seed: int = 0, values: int = 5, read_lists: bool = False,
             mean_latency_ns: int = 2_000_000, strings: bool = False) -> list[Op]:
    """A linearizable history of `n_ops` operations (invocations + completions = 2 * n_ops
    records). `read_lists`: register reads answer a list of siblings, as our register workload
    does. `values`: the cas-register's value domain (Jepsen uses 5). `strings`: kv values are
    strings and every key starts at "" (Porcupine's kv test; check with initial "")."""
    if model not in MODELS:
        raise ValueError(f"no generator for model {model!r}; choose from {', '.join(MODELS)}")
    rng = random.Random(seed)
    counter = [0]
    next_pid = processes
    # (free at time, worker slot, process id)
    free = [(rng.randrange(mean_latency_ns), w, w) for w in range(processes)]
    heapq.heapify(free)
    planned: list[_Planned] = []
    for _ in range(n_ops):
        t, w, pid = heapq.heappop(free)
        invoke = t + rng.randrange(1, mean_latency_ns // 4 + 2)
        complete = invoke + 1 + int(rng.expovariate(1 / mean_latency_ns))
        lin = rng.randrange(invoke, complete + 1)
        f, arg = _choose(rng, model, counter, values, strings)
        info = rng.random() < info_rate
        planned.append(_Planned(pid, f"k{rng.randrange(keys)}" if keys > 1 else "k", f, arg,
                                invoke, complete, lin, info))
        if info:
            pid, next_pid = next_pid, next_pid + 1
        heapq.heappush(free, (complete, w, pid))
    states: dict[str, Any] = {}
    init = frozenset() if model == "set" else "" if strings and model == "kv" else None
    for p in sorted(planned, key=lambda p: p.lin):
        effective = not p.info or rng.random() < 0.5
        states[p.key] = _apply(model, states.get(p.key, init), p, effective)
    events: list[tuple[int, int, int, Op]] = []
    for i, p in enumerate(planned):
        events.append((p.invoke, 0, i, Op(0, p.invoke, p.process, "invoke", p.f, p.arg, p.key)))
        if p.info:
            typ, value = "info", p.arg
        else:
            typ, value = p.outcome, p.result
            if read_lists and p.f == "read" and model == "register":
                value = [] if value is None else [value]
        events.append((p.complete, 1, i, Op(0, p.complete, p.process, typ, p.f, value, p.key)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    ops = []
    for n, (_, _, _, op) in enumerate(events):
        op.index = n
        op.line = n + 1
        ops.append(op)
    return ops


def corrupt_one_read(ops: list[Op], seed: int = 0) -> list[Op] | None:
    """A copy of `ops` with one ok read answering a value nobody wrote (None if no ok read)."""
    rng = random.Random(seed)
    reads = [i for i, o in enumerate(ops) if o.type == "ok" and o.f in ("read", "get")]
    if not reads:
        return None
    i = rng.choice(reads)
    out = list(ops)
    o = ops[i]
    bogus: Any = "never-written"
    if isinstance(o.value, list):
        bogus = [*o.value, "never-written"]
    out[i] = Op(o.index, o.time, o.process, o.type, o.f, bogus, o.key, line=o.line)
    return out
