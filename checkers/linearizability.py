"""Linearizability, one key at a time: prepare each key's operations for its model, search
each key (`checkers/search.py`: Wing & Gong with Lowe's just-in-time linearization and Porcupine's
memoisation), and explain an invalid key by its longest linearizable prefix.

Keys are independent (every model here is P-compositional), so they are checked smallest first,
the check stops at the first invalid key unless `Budget.all_keys` (as Porcupine does), and a long
check spreads its keys over `Budget.jobs` processes with the same answer as one process.

Two reductions on indeterminate (`info`) operations are made here, before the search, and are
sound for every model: an info operation that cannot change the state (a read) is dropped, and
so is one whose written value nobody ever observes (linearizing it could only make later reads
fail). A budget of time and memory ends the search with `unknown`.

`Semantics` holds the choices other checkers make differently (docs/history.md): the initial
value, whether a read of nil is unknown (Knossos) or the empty state, and whether a failed cas is
dropped (Knossos) or observed (Porcupine's etcd model).
"""

from __future__ import annotations

import time as _time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkers.history import Call
from checkers.models import DELETE, INVALID, Model, ModelError, get_model, show
from checkers.search import KeyResult, OutOfBudget, search
from checkers.verdict import INVALID as V_INVALID
from checkers.verdict import UNKNOWN, VALID, Verdict

PREFIX_SHOWN = 100  # evidence keeps the last operations of the prefix (the full length is given)


@dataclass
class Budget:
    """How much the check may spend: seconds of search in all, estimated bytes of memo cache per
    key, processes to check keys in (`jobs`), and whether to go on past the first invalid key
    (`all_keys`; by default the check stops there, as Porcupine does)."""

    seconds: float = 60.0
    memory_bytes: int = 512 * 2**20
    jobs: int = 1
    all_keys: bool = False


# a check that has run this long in one process hands its remaining keys to a pool
SERIAL_SECONDS = 0.25


NIL_READS = ("absent", "unknown")
FAILED_CAS = ("ignore", "observe")


@dataclass(frozen=True)
class Semantics:
    """How to read a history written for another checker.

    `initial`: the JSON value every key starts with (None: the model's empty state).
    `nil_reads`: "absent", a completed read of nil means the key is empty; "unknown", it matches
    any state, as Knossos has it ("we don't know what it read").
    `failed_cas`: "ignore", a failed cas did nothing and is dropped (Knossos); "observe", it also
    saw a value other than its expected one at some point during the call (Porcupine's etcd)."""

    initial: Any = None
    nil_reads: str = "absent"
    failed_cas: str = "ignore"

    def __post_init__(self) -> None:
        if self.nil_reads not in NIL_READS:
            raise ValueError(f"nil_reads must be one of {', '.join(NIL_READS)}")
        if self.failed_cas not in FAILED_CAS:
            raise ValueError(f"failed_cas must be one of {', '.join(FAILED_CAS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"initial": self.initial, "nil_reads": self.nil_reads,
                "failed_cas": self.failed_cas}


def _prepare(calls: Sequence[Call], model: Model,
             semantics: Semantics | None = None) -> tuple[list, list, int]:
    """(ok ops, info ops, pruned count) for one key. ok: (pos, end_pos, op, call);
    info: (pos, op, call). fail ops certainly did not happen (unless failed cas are observed:
    then they are ok reads of "anything but old"); info reads change nothing, and so does a read
    of nil when nil reads are unknown (it fits every state, so it can always be placed)."""
    oks: list[tuple[int, int, Any, Call]] = []
    infos: list[tuple[int, Any, Call]] = []
    sem = semantics or Semantics()
    for c in calls:
        try:
            op = _op_of(c, model, sem)
        except ModelError as e:
            where = f"line {c.invoke.line}" if c.invoke.line is not None else f"op {c.invoke.index}"
            raise ModelError(f"{where}: {e}") from None
        if op is None:
            continue
        if c.end_pos is not None and c.type in ("ok", "fail"):
            oks.append((c.pos, c.end_pos, op, c))
        else:
            infos.append((c.pos, op, c))
    observed: set[Any] | None = set()
    for op in [o[2] for o in oks] + [o[1] for o in infos]:
        seen = model.observes(op)
        if seen is None:  # some op depends on every value: no value may be merged or dropped
            observed = None
            break
        observed.update(seen)
    if observed is None:
        return oks, infos, 0
    # values nobody observes are interchangeable: one stand-in for all collapses model states
    oks = [(a, b, model.canonical_op(op, observed), c) for a, b, op, c in oks]
    kept = []
    for item in infos:
        intro = model.introduces(item[1])
        intro = None if intro is None else tuple(intro)
        if intro is not None and intro and not any(v in observed for v in intro):
            continue
        kept.append((item[0], model.canonical_op(item[1], observed), item[2]))
    return oks, kept, len(infos) - len(kept)


def _op_of(c: Call, model: Model, sem: Semantics) -> tuple[str, Any, Any] | None:
    """The model op a call stands for, or None when it constrains nothing. A call that completed
    ok or fail (an observed failed cas) has a deadline; any other may take effect or not."""
    typ = c.type
    if typ == "fail":
        return model.prepare_failed(c.invoke.f, c.invoke.value) \
            if sem.failed_cas == "observe" else None
    f = model.canonical(c.invoke.f)
    if typ == "ok":
        assert c.complete is not None
        if sem.nil_reads == "unknown" and c.complete.value is None and f in model.readonly:
            return None
        return model.prepare(c.invoke.f, c.invoke.value, c.complete.value, True)
    if f in model.readonly:
        return None
    arg = c.invoke.value
    if f == DELETE and arg is None and c.complete is not None:
        arg = c.complete.read  # what an info delete had read, so what it meant to remove
    return model.prepare(c.invoke.f, arg, None, False)


def _t(ns: float) -> str:
    return f"{ns / 1e9:.3f} s" if ns >= 1e9 else f"{ns / 1e6:.3f} ms"


def _op_words(c: Call) -> str:
    d = c.to_dict()
    failed = "failed " if c.type == "fail" else ""  # an observed failed cas
    what = (f"the {d['f']} returning {show(d['value'])}" if c.f in ("read", "get", "r")
            else f"the {failed}{d['f']} of {show(d['value'])}")
    return f"{what} by process {d['process']} (invoked at {_t(c.time)}"\
        + (f", completed at {_t(c.end)})" if c.end is not None else ", never completed)")


def _explain(r: KeyResult, model: Model, written: set[Any] | None) -> str:
    n = len(r.prefix)
    head = (f"Let P be the longest linearizable prefix of key {r.key!r}: {n} operation"
            f"{'' if n == 1 else 's'}, after which {model.describe(r.state)}.")

    def why(c: Call, reason: str) -> str:
        if written is not None and c.f in ("read", "get", "r") and c.complete is not None:
            vals = c.complete.value if isinstance(c.complete.value, list) else [c.complete.value]
            ghosts = [v for v in vals if v is not None and _freeze_safe(v) not in written]
            if ghosts:
                reason += f" (no operation ever wrote {', '.join(show(v) for v in ghosts)})"
        return reason

    b = r.blocking
    reasons = {id(c): why(c, w) for c, w in r.unplaceable}
    others = [c for c, _ in r.unplaceable if c is not b]
    if b is None:
        return f"{head} Then no operation can follow P."
    text = (f"{head} Then {_op_words(b)} must take effect right after P, but "
            f"{reasons.get(id(b), 'it cannot')}")
    if others:
        shown = "; ".join(f"{_op_words(c)}: {reasons[id(c)]}" for c in others[:3])
        more = f"; and {len(others) - 3} more" if len(others) > 3 else ""
        text += (f"; nor can any of the {len(others)} other operation"
                 f"{'s' if len(others) > 1 else ''} that could go first: {shown}{more}")
    else:
        text += ", and no other operation could go first"
    return text + "."


def _freeze_safe(v: Any) -> Any:
    from checkers.models import freeze

    return freeze(v)


def _check_key(job: tuple[int, tuple]) -> tuple[int, KeyResult]:
    """(index, one key's answer), `unknown` when the budget ran out."""
    i, (key, model, oks, infos, pruned, deadline, memory_bytes) = job
    try:
        r = search(key, model, oks, infos, deadline, memory_bytes)
    except OutOfBudget as e:
        r = KeyResult(key, UNKNOWN, len(oks), len(infos), 0, 0, reason=e.reason)
    r.pruned_info = pruned
    return i, r


def _check_keys(prepared: list[tuple[Any, list, list, int]], model: Model, deadline: float,
                budget: Budget) -> list[KeyResult]:
    """The keys' results, in `prepared` order, up to the first that stops the check: the first
    invalid key (unless `budget.all_keys`), or one that ran out of time (the clock is shared;
    memory is per key, so other keys still get theirs).

    Keys are independent (linearizability is P-compositional), so they may be checked in any
    order and in parallel. They start one by one in this process; once that has taken
    SERIAL_SECONDS (a process pool costs more than most histories take), the rest go to
    `budget.jobs` processes, smallest first. Whatever order they finish in, the answer is the one
    a single process gives: the results before the first stop, in order."""
    jobs = list(enumerate((key, model, oks, infos, pruned, deadline, budget.memory_bytes)
                          for key, oks, infos, pruned in prepared))
    results: list[KeyResult] = []
    started = _time.monotonic()
    for n, job in enumerate(jobs):
        if budget.jobs > 1 and len(jobs) - n > 1 \
                and _time.monotonic() - started > SERIAL_SECONDS:
            return results + _check_in_pool(jobs[n:], budget, deadline)
        results.append(_check_key(job)[1])
        if _stops(results[-1], budget, deadline):
            break
    return results


def _check_in_pool(jobs: list[tuple[int, tuple]], budget: Budget,
                   deadline: float) -> list[KeyResult]:
    import multiprocessing

    # spawn: the caller may have threads (a fork would copy their locks mid-use)
    ctx = multiprocessing.get_context("spawn")
    first = jobs[0][0]
    done: dict[int, KeyResult] = {}
    cut = first + len(jobs)  # results from this index on are dropped (after the first stop)
    missing = first  # every index below this one is done
    with ctx.Pool(min(budget.jobs, len(jobs))) as pool:
        for i, r in pool.imap_unordered(_check_key, jobs):
            done[i] = r
            if i < cut and _stops(r, budget, deadline):
                cut = i + 1
            while missing in done:
                missing += 1
            if missing >= cut:
                break
        pool.terminate()  # keys after the first stop: their answer is not needed
    return [done[k] for k in range(first, cut)]


def _stops(r: KeyResult, budget: Budget, deadline: float) -> bool:
    """After this key no other is checked: it is invalid (and the first invalid key decides),
    or the shared clock ran out."""
    return (r.verdict == V_INVALID and not budget.all_keys) or (
        r.verdict == UNKNOWN and _time.monotonic() > deadline)


def check_linearizable(calls: Sequence[Call], model: Model | str,
                       budget: Budget | None = None,
                       semantics: Semantics | None = None) -> Verdict:
    """Check client calls (from `history.pair`) against a model, one key at a time. A model
    given by name starts at `semantics.initial`; a Model instance is used as configured."""
    budget = budget or Budget()
    semantics = semantics or Semantics()
    try:
        if isinstance(model, str):
            model = get_model(model, semantics.initial)
    except ModelError as e:
        return Verdict(UNKNOWN, f"The history cannot be checked: {e}.",
                       {"keys": {}, "checked_keys": 0, "reason": str(e), "model": model,
                        "semantics": semantics.to_dict()})
    deadline = _time.monotonic() + budget.seconds
    by_key: dict[Any, list[Call]] = defaultdict(list)
    for c in calls:
        by_key[c.key].append(c)
    prepared = []
    try:
        for key, cs in by_key.items():
            oks, infos, pruned = _prepare(cs, model, semantics)
            prepared.append((key, oks, infos, pruned))
    except ModelError as e:
        return Verdict(UNKNOWN, f"The history cannot be checked against the {model.name} "
                       f"model: {e}.", {"keys": {}, "checked_keys": 0, "reason": str(e),
                                        "model": model.name, "semantics": semantics.to_dict()})
    # small keys first: more keys finish within the budget, and violations surface sooner
    prepared.sort(key=lambda p: len(p[1]) + len(p[2]))
    results = _check_keys(prepared, model, deadline, budget)
    for r in results:
        if r.verdict == V_INVALID:
            _restore_values(r, model, semantics)
    reason = next((r.reason for r in reversed(results) if r.verdict == UNKNOWN), "")
    unchecked = len(prepared) - len(results)

    written_by_key: dict[Any, set[Any]] = {}
    written: set[Any] | None
    keys_ev: dict[str, dict[str, Any]] = {}
    for r in results:
        ev: dict[str, Any] = {"verdict": r.verdict, "ops": r.ops, "info_ops": r.info_ops,
                              "pruned_info_ops": r.pruned_info,
                              "configurations": r.configurations,
                              "seconds": round(r.seconds, 4)}
        if r.verdict == V_INVALID:
            # kv reads answer accumulated values, not written ones: no "never written" note
            written = None if model.name == "kv" else written_by_key.setdefault(
                r.key, _written(by_key[r.key], model, semantics.initial))
            shown = r.prefix[-PREFIX_SHOWN:]
            ev.update({
                "prefix": [c.to_dict() for c in shown],
                "prefix_length": len(r.prefix),
                "prefix_omitted": len(r.prefix) - len(shown),
                "final_state": model.describe(r.state),
                "unplaceable": [dict(c.to_dict(), why=why) for c, why in r.unplaceable],
                "must_complete": r.blocking.to_dict() if r.blocking else None,
                "explanation": _explain(r, model, written),
            })
        elif r.verdict == UNKNOWN:
            ev["explanation"] = r.reason
            ev["prefix"], ev["unplaceable"] = [], []
        else:
            ev["prefix"], ev["unplaceable"], ev["explanation"] = [], [], ""
        keys_ev["" if r.key is None else str(r.key)] = ev

    bad = [r for r in results if r.verdict == V_INVALID]
    unknown = [r for r in results if r.verdict == UNKNOWN]
    if len(unknown) > 1:
        reason = f"{reason} (and {len(unknown) - 1} more key(s) ran out of budget)"
    evidence: dict[str, Any] = {
        "keys": keys_ev, "checked_keys": sum(r.verdict != UNKNOWN for r in results),
        "total_keys": len(prepared), "invalid_keys": [str(r.key) for r in bad],
        "model": model.name, "unchecked_keys": unchecked, "semantics": semantics.to_dict(),
    }
    if bad:
        first = keys_ev["" if bad[0].key is None else str(bad[0].key)]["explanation"]
        extra = (f" ({len(bad)} of {len(prepared)} keys are not linearizable.)"
                 if len(bad) > 1 else "")
        if unchecked and not budget.all_keys:
            evidence["stopped_at_first_invalid_key"] = True
            extra += (f" The check stopped at this key; {unchecked} of {len(prepared)} keys "
                      "were not checked (--all-keys checks every key).")
        return Verdict(V_INVALID, first + extra, evidence)
    if reason:
        evidence["reason"] = reason
        return Verdict(UNKNOWN, f"Linearizability is undecided: {reason}, with "
                       f"{evidence['checked_keys']} of {len(prepared)} keys found linearizable.",
                       evidence)
    if not prepared:
        # as Knossos and Porcupine answer: the empty history is linearizable, trivially
        return Verdict(VALID, "There are no client operations, so the history is trivially "
                       "linearizable.", evidence)
    n_ops = sum(r.ops for r in results)
    return Verdict(VALID, f"All {len(prepared)} key{'s' if len(prepared) != 1 else ''} "
                   f"({n_ops} completed operations) are linearizable under the {model.name} "
                   "model.", evidence)


def _restore_values(r: KeyResult, model: Model, semantics: Semantics) -> None:
    """Replay the prefix with the values as written, so the explanation names the value the
    register really held rather than the search's stand-in for values nobody reads."""

    def real(c: Call) -> Any:
        return _op_of(c, model, semantics)

    state = model.init
    for c in r.prefix:
        state = model.step(state, real(c))
        if state is INVALID:
            return
    r.state = state
    r.unplaceable = [(c, model.why_not(state, real(c)) if model.step(state, real(c)) is INVALID
                      else why) for c, why in r.unplaceable]


def _written(calls: Sequence[Call], model: Model, initial: Any = None) -> set[Any]:
    from checkers.models import freeze

    out: set[Any] = set()
    if initial is not None:  # the initial value was there without a write
        v = freeze(initial)
        out.update(v if isinstance(v, tuple) else (v,))
    for c in calls:
        if c.type == "fail":
            continue
        try:
            intro = model.introduces(model.prepare(c.invoke.f, c.invoke.value, None, False))
        except ModelError:
            continue
        if intro:
            out.update(intro)
    return out
