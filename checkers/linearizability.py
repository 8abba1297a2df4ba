"""Linearizability: Wing & Gong's search with Lowe's just-in-time linearization and
Porcupine's memoisation, one key at a time.

How the search works (per key). Every `ok` operation has a call entry (its invocation) and a
return entry (its completion) in one doubly linked list ordered by history position. Scanning from
the head, each call met before the first return is a candidate: it may take effect now (Lowe's
just-in-time rule: an operation is only linearized when it must be, before the first pending
return). Linearizing a candidate lifts its two entries out of the list and restarts the scan; a
return met by the scan is a dead end (its operation had to take effect already), so the search
backtracks. A cache of (bitset of linearized operations, model state) prunes every configuration
already explored (Porcupine), which makes the search polynomial on the histories met in practice.

`info` operations (and invocations left pending) may take effect at any point after their
invocation, or never. They are kept out of the list and tried only at a dead end, before
backtracking: an info operation is needed only when some ok operation cannot be placed without it.
Two reductions are sound for every model here and remove most of their cost: an info operation
that cannot change the state (a read) is dropped, and so is one whose written value nobody ever
observes (linearizing it could only make later reads fail).

A budget of time and memory (the cache's estimated size) ends the search with `unknown`.

`Semantics` holds the choices other checkers make differently (docs/history.md): the initial
value, whether a read of nil is unknown (Knossos) or the empty state, and whether a failed cas is
dropped (Knossos) or observed (Porcupine's etcd model).
"""

from __future__ import annotations

import time as _time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.history import Call
from checkers.models import DELETE, INVALID, UNREAD, Model, ModelError, get_model, show
from checkers.verdict import INVALID as V_INVALID
from checkers.verdict import UNKNOWN, VALID, Verdict

PREFIX_SHOWN = 100  # evidence keeps the last operations of the prefix (the full length is given)


@dataclass
class Budget:
    """Limits for the whole check: seconds of search and estimated bytes of memo cache per key."""

    seconds: float = 60.0
    memory_bytes: int = 512 * 2**20


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


class _OutOfBudget(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class KeyResult:
    key: Any
    verdict: str
    ops: int
    info_ops: int
    pruned_info: int
    configurations: int
    prefix: list[Call] = field(default_factory=list)
    state: Any = None
    unplaceable: list[tuple[Call, str]] = field(default_factory=list)
    blocking: Call | None = None
    reason: str = ""
    seconds: float = 0.0


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


class _Memo:
    """Configurations already explored: (ok bitset, state) -> info bitsets used to get there.

    A configuration is dominated by an explored one with the same ok operations and state that
    used a subset of the info operations: unused info operations stay available forever, so it
    had every option this one has. Models with ordered states (`has_dominance`) also let a state
    whose set part is a superset dominate. Without either this is Porcupine's plain cache."""

    __slots__ = ("plain", "table", "size", "split")

    def __init__(self, model: Model) -> None:
        self.plain: set[tuple[int, Any]] = set()
        self.table: dict[tuple[int, Any], list[tuple[int, Any]]] = {}
        self.size = 0
        self.split = model.split if model.has_dominance else None

    def add(self, key: tuple[int, Any], ibits: int) -> bool:
        """Record the configuration; False when it (or a dominating one) was seen already."""
        split = self.split
        if split is None:
            if not ibits:
                if key in self.plain:
                    return False
                self.plain.add(key)
                self.size += 1
                return True
            if key in self.plain:  # explored with no info op used: dominates every ibits
                return False
            obits, state = key
            dom: Any = None
        else:
            obits, state = key
            state, dom = split(state)
        k = (obits, state)
        seen = self.table.get(k)
        if seen is None:
            self.table[k] = [(ibits, dom)]
        else:
            for u, d in seen:
                if not u & ~ibits and (dom is None or d >= dom):
                    return False
            seen.append((ibits, dom))
        self.size += 1
        return True


def _search(key: Any, model: Model, oks: list, infos: list, deadline: float,
            memory_bytes: int) -> KeyResult:
    m, n_info = len(oks), len(infos)
    started = _time.monotonic()
    events: list[tuple[int, int, bool]] = []
    for i, (pos, end, _, _) in enumerate(oks):
        events.append((pos, i, True))
        events.append((end, i, False))
    events.sort()
    n_e = len(events)
    head, tail = 0, n_e + 1
    nxt = list(range(1, n_e + 2)) + [tail]
    prv = [0] + list(range(0, n_e + 1))
    is_call = [False] * (n_e + 2)
    opi = [0] * (n_e + 2)
    epos = [0] * (n_e + 2)
    match = [0] * (n_e + 2)
    call_entry = [0] * m
    for k, (pos, i, c) in enumerate(events, 1):
        is_call[k], opi[k], epos[k] = c, i, pos
        if c:
            call_entry[i] = k
        else:
            match[call_entry[i]] = k
    data = [o[2] for o in oks]
    info_pos = [o[0] for o in infos]
    info_data = [o[1] for o in infos]
    step = model.step
    readonly = [o[2][0] in model.readonly for o in oks]
    # For reads that retire values (siblings-register): how many reads not yet linearized
    # observe each value. A read that retires only values no remaining read observes is forced.
    retires = type(model).retired is not Model.retired  # (a bound method never `is` it)
    readers_left: dict[Any, int] = defaultdict(int)
    read_values: list[tuple[Any, ...]] = [()] * m
    project = model.project
    needed = readers_left.__getitem__  # a value is worth keeping while a read to come sees it
    if retires:
        for i, o in enumerate(oks):
            if readonly[i]:
                read_values[i] = tuple(model.observes(o[2]) or ())
                for v in read_values[i]:
                    readers_left[v] += 1
    # identical info ops stay eligible forever once invoked: only the first unused one is tried
    same_prev = [-1] * n_info
    last_seen: dict[Any, int] = {}
    for j, d in enumerate(info_data):
        same_prev[j] = last_seen.get(d, -1)
        last_seen[d] = j
    per_entry = 150 + (m + n_info) // 7  # tuple + table slot + bitset ints, roughly
    max_entries = max(1000, memory_bytes // per_entry)

    # Ops writing a value nobody reads (UNREAD) are never worth placing early: they are placed
    # for free right before an overwriting op while they are candidates ("absorbed"), or else
    # when their own completion is the dead end. Every linearization can be rearranged so.
    unread = [o[2][1] is UNREAD for o in oks]
    absorbs = [model.overwrites(o[2]) for o in oks]
    info_absorbs = [model.overwrites(d) for d in info_data]
    any_unread = any(unread)

    def absorbable() -> list[int]:
        """Candidate UNREAD calls: those before the first return still in the list."""
        out = []
        e = nxt[head]
        while is_call[e]:
            if unread[opi[e]]:
                out.append(e)
            e = nxt[e]
        return out

    memo = _Memo(model)
    remember = memo.add
    state = model.init
    obits = 0  # ok ops linearized
    ibits = 0  # info ops linearized
    # frames: (entry >= 0 for an ok op, -1-j for info op j; state before; kind; absorbed
    # entries) where kind is FORCED (a read that fitted, or an UNREAD op at its deadline: no
    # alternative is worth trying), OK, or for info ops the dead-end entry they were tried at
    FORCED, OK = -1, 0
    stack: list[tuple[int, Any, int, tuple[int, ...]]] = []
    best: tuple[list[tuple[int, Any, int, tuple[int, ...]]], Any, int] | None = None
    entry = nxt[head]
    info_i = -1  # >= 0: trying info ops at the dead end `blocked`
    blocked = 0
    iters = 0

    def lift(e: int) -> None:
        p, n = prv[e], nxt[e]
        nxt[p], prv[n] = n, p
        r = match[e]
        p, n = prv[r], nxt[r]
        nxt[p], prv[n] = n, p

    def result(verdict: str) -> KeyResult:
        return KeyResult(key, verdict, m, n_info, 0, memo.size,
                         seconds=_time.monotonic() - started)

    if entry == tail:
        return result(VALID)
    while True:
        iters += 1
        if not iters & 0x3FFF:
            if _time.monotonic() > deadline:
                raise _OutOfBudget(f"the time budget ran out while checking key {key!r} "
                                   f"after {memo.size} configurations")
            if memo.size > max_entries:
                raise _OutOfBudget(
                    f"the memory budget ({memory_bytes // 2**20} MiB) ran out while checking key "
                    f"{key!r} after {memo.size} configurations")
        if info_i < 0:
            if is_call[entry]:
                i = opi[entry]
                if unread[i]:
                    entry = nxt[entry]
                    continue
                new = step(state, data[i])
                if new is not INVALID:
                    nb = obits | (1 << i)
                    taken: tuple[int, ...] = ()
                    if any_unread and absorbs[i]:
                        taken = tuple(absorbable())
                        for e in taken:
                            nb |= 1 << opi[e]
                    # a read that fits now and changes nothing may as well go now: moving it
                    # earlier is safe. A siblings read that retires values is forced only when
                    # no read still to come observes them.
                    forced = readonly[i] and new is state
                    if retires:
                        if readonly[i]:
                            for v in read_values[i]:
                                readers_left[v] -= 1
                            forced = forced or not any(readers_left[v]
                                                       for v in model.retired(state, new))
                        new = project(new, needed)
                    if remember((nb, new), ibits):
                        stack.append((entry, state, FORCED if forced else OK, taken))
                        state, obits = new, nb
                        lift(entry)
                        for e in taken:
                            lift(e)
                        entry = nxt[head]
                        if entry == tail:
                            return result(VALID)
                        continue
                    if retires and readonly[i]:
                        for v in read_values[i]:
                            readers_left[v] += 1
                entry = nxt[entry]
                continue
            blocked = entry  # a return: its operation should have taken effect by now
            info_i = 0
        limit = epos[blocked]
        found = False
        while info_i < n_info and info_pos[info_i] < limit:
            b = 1 << info_i
            twin = same_prev[info_i]
            if not ibits & b and (twin < 0 or ibits >> twin & 1):
                new = step(state, info_data[info_i])
                if retires and new is not INVALID:
                    new = project(new, needed)
                if new is not INVALID:
                    taken = ()
                    nb = obits
                    if any_unread and info_absorbs[info_i]:
                        taken = tuple(absorbable())
                        for e in taken:
                            nb |= 1 << opi[e]
                    if remember((nb, new), ibits | b):
                        stack.append((-1 - info_i, state, blocked, taken))
                        state, ibits, obits = new, ibits | b, nb
                        for e in taken:
                            lift(e)
                        found = True
                        break
            info_i += 1
        if found:
            info_i = -1
            entry = nxt[head]
            if entry == tail:
                return result(VALID)
            continue
        i = opi[blocked]
        if unread[i]:  # an UNREAD op at its deadline goes now
            e = call_entry[i]
            new = step(state, data[i])
            if retires and new is not INVALID:
                new = project(new, needed)
            nb = obits | (1 << i)
            if new is not INVALID and remember((nb, new), ibits):
                stack.append((e, state, FORCED, ()))
                state, obits = new, nb
                lift(e)
                info_i = -1
                entry = nxt[head]
                if entry == tail:
                    return result(VALID)
                continue
        # dead end: remember the deepest one, then backtrack
        if best is None or len(stack) > len(best[0]):
            best = (list(stack), state, blocked)
        resumed = False
        while stack:
            ref, state, kind, taken = stack.pop()
            for e in reversed(taken):
                obits ^= 1 << opi[e]
                _unlift(e, match[e], nxt, prv)
            if ref < 0:
                j = -1 - ref
                ibits ^= 1 << j
                blocked, info_i = kind, j + 1
                resumed = True
                break
            obits ^= 1 << opi[ref]
            _unlift(ref, match[ref], nxt, prv)
            if retires:
                for v in read_values[opi[ref]]:
                    readers_left[v] += 1
            if kind == OK:
                entry, info_i = nxt[ref], -1
                resumed = True
                break
            # a forced step failed: the configuration before it fails too, keep undoing
        if not resumed:
            break

    # invalid: rebuild the deepest configuration to name what could not follow it
    assert best is not None
    frames, bstate, bblocked = best
    prefix: list[Call] = []
    done_ok: set[int] = set()
    for ref, _, _, taken in frames:
        for e in taken:  # absorbed UNREAD writes went just before their overwriting op
            prefix.append(oks[opi[e]][3])
            done_ok.add(opi[e])
        if ref >= 0:
            prefix.append(oks[opi[ref]][3])
            done_ok.add(opi[ref])
        else:
            prefix.append(infos[-1 - ref][2])
    limit = epos[bblocked]
    candidates = [i for i, o in enumerate(oks) if i not in done_ok and o[0] < limit]
    unplaceable = []
    for i in candidates:
        op = data[i]
        if step(bstate, op) is INVALID:
            why = model.why_not(bstate, op)
        else:
            why = "it could take effect here, but every continuation after it fails"
        unplaceable.append((oks[i][3], why))
    out = result(V_INVALID)
    out.prefix, out.state, out.unplaceable = prefix, bstate, unplaceable
    out.blocking = oks[opi[bblocked]][3]
    return out


def _t(ns: float) -> str:
    return f"{ns / 1e9:.3f} s" if ns >= 1e9 else f"{ns / 1e6:.3f} ms"


def _unlift(call: int, ret: int, nxt: list[int], prv: list[int]) -> None:
    nxt[prv[ret]] = ret
    prv[nxt[ret]] = ret
    nxt[prv[call]] = call
    prv[nxt[call]] = call


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
    results: list[KeyResult] = []
    reason = ""
    for key, oks, infos, pruned in prepared:
        try:
            r = _search(key, model, oks, infos, deadline, budget.memory_bytes)
        except _OutOfBudget as e:
            reason = e.reason
            results.append(KeyResult(key, UNKNOWN, len(oks), len(infos), pruned, 0,
                                     reason=e.reason))
            if _time.monotonic() > deadline:
                break  # the clock is shared by all keys; memory is per key, so go on
            continue
        r.pruned_info = pruned
        if r.verdict == V_INVALID:
            _restore_values(r, model, semantics)
        results.append(r)
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
