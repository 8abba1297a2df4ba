"""The per-key linearizability search: Wing & Gong's backtracking with Lowe's just-in-time
linearization and Porcupine's memoisation, plus the reductions that make indeterminate (`info`)
operations cheap. `linearizability.py` prepares each key's operations and explains the answer.

The search is built from named steps, each sound on its own:

- `Entries`: the doubly linked list of call and return entries (which operation may go next);
- `Memo`: the cache of configurations already explored (why a repeat cannot succeed);
- `InfoOps`: operations that may or may not have taken effect (tried only at a dead end);
- `Absorber`: writes nobody reads, placed for free before the write that hides them;
- `ReadsToCome`: for models whose reads retire values, which values a later read still needs;
- `Limits`: the time and memory budget, which ends the search with `unknown`.

`search_steps()` is the loop that uses them: linearize a candidate, or at a dead end try an info
op, or backtrack. A model needs only `init` and `step` for it (see `models.Model`); every other hook
switches on a reduction and has a default that keeps the search exact.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from checkers.history import Call
from checkers.models import INVALID, UNREAD, Model

Op = tuple[str, Any, Any]
OkOp = tuple[int, int, Op, Call]  # (invocation position, completion position, op, call)
InfoOp = tuple[int, Op, Call]  # (invocation position, op, call)


class OutOfBudget(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class KeyResult:
    """One key's answer; for `invalid`, the deepest configuration reached and why nothing
    could follow it."""

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


class Entries:
    """Every ok operation's call and return entry in one doubly linked list, by history position
    (Lowe's just-in-time linearization).

    Scanning from the head, each call met before the first return is a candidate: it may take
    effect now. An operation is only linearized when it must be, before the first pending return,
    and every linearization can be reordered so (moving an operation later, up to its return,
    never breaks real-time order). Linearizing lifts both its entries out of the list; a return
    met by the scan is a dead end, since its operation had to take effect already."""

    __slots__ = ("nxt", "prv", "is_call", "opi", "pos", "match", "call_of", "tail")

    def __init__(self, oks: list[OkOp]) -> None:
        events = sorted([(o[0], i, True) for i, o in enumerate(oks)]
                        + [(o[1], i, False) for i, o in enumerate(oks)])
        n = len(events)
        self.tail = n + 1  # entry 0 is the head, n + 1 the tail; entries are 1..n
        self.nxt = list(range(1, n + 2)) + [self.tail]
        self.prv = [0] + list(range(0, n + 1))
        self.is_call = [False] * (n + 2)
        self.opi = [0] * (n + 2)  # entry -> its operation's index in oks
        self.pos = [0] * (n + 2)  # entry -> history position
        self.match = [0] * (n + 2)  # call entry -> its return entry
        self.call_of = [0] * len(oks)  # operation -> its call entry
        for k, (pos, i, is_call) in enumerate(events, 1):
            self.is_call[k], self.opi[k], self.pos[k] = is_call, i, pos
            if is_call:
                self.call_of[i] = k
            else:
                self.match[self.call_of[i]] = k

    def lift(self, call: int) -> None:
        """Take an operation (its call entry and its return) out of the list."""
        nxt, prv = self.nxt, self.prv
        p, n = prv[call], nxt[call]
        nxt[p], prv[n] = n, p
        ret = self.match[call]
        p, n = prv[ret], nxt[ret]
        nxt[p], prv[n] = n, p

    def unlift(self, call: int) -> None:
        """Put it back (in the reverse order of lifting, so both neighbours are in place)."""
        nxt, prv = self.nxt, self.prv
        ret = self.match[call]
        nxt[prv[ret]] = ret
        prv[nxt[ret]] = ret
        nxt[prv[call]] = call
        prv[nxt[call]] = call

    def candidates(self) -> Iterator[int]:
        """Call entries before the first return: the operations that may take effect now."""
        e = self.nxt[0]
        while self.is_call[e]:
            yield e
            e = self.nxt[e]


class Memo:
    """Configurations already explored: (ok bitset, state) -> the info bitsets used to get there.

    A configuration that was explored and failed fails again: what can follow depends only on
    which operations are done and on the state (Porcupine's cache). It is also dominated by an
    explored one with the same ok operations and state that used a subset of the info operations:
    unused info operations stay available forever, so that one had every option this one has.
    Models with ordered states (`has_dominance`) also let a state whose set part is a superset
    dominate."""

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


class InfoOps:
    """Operations that may have taken effect at any point after their invocation, or never.

    They are kept out of the list and tried only at a dead end (a return whose operation cannot
    be placed), in invocation order, before backtracking: an info operation is needed only when
    some ok operation cannot be placed without it, and placing it earlier than needed gains
    nothing, since it stays available. Identical info operations are interchangeable, so only
    the first unused one of a group is tried."""

    __slots__ = ("pos", "ops", "twin", "n")

    def __init__(self, infos: list[InfoOp]) -> None:
        self.pos = [o[0] for o in infos]
        self.ops = [o[1] for o in infos]
        self.n = len(infos)
        self.twin = [-1] * self.n  # the previous identical op, or -1
        last: dict[Any, int] = {}
        for j, op in enumerate(self.ops):
            self.twin[j] = last.get(op, -1)
            last[op] = j

    def eligible(self, start: int, limit: int, ibits: int) -> Iterator[int]:
        """Unused info ops from index `start`, invoked before history position `limit`."""
        pos, twin = self.pos, self.twin
        j = start
        while j < self.n and pos[j] < limit:
            t = twin[j]
            if not ibits >> j & 1 and (t < 0 or ibits >> t & 1):
                yield j
            j += 1


class Absorber:
    """Writes of a value nobody reads (the model's UNREAD stand-in) are never worth placing
    early: they are placed for free right before an operation that hides them (`overwrites`)
    while they are candidates, or else when their own return is the dead end. Every
    linearization can be rearranged so, because no read can tell when such a write happened
    as long as it precedes the overwrite."""

    __slots__ = ("unread", "any", "entries")

    def __init__(self, oks: list[OkOp], entries: Entries) -> None:
        self.unread = [o[2][1] is UNREAD for o in oks]
        self.any = any(self.unread)
        self.entries = entries

    def taken_before(self) -> tuple[int, ...]:
        """The candidate UNREAD writes an op that overwrites them places for free before it."""
        unread, opi = self.unread, self.entries.opi
        return tuple(e for e in self.entries.candidates() if unread[opi[e]])


class ReadsToCome:
    """For models whose reads change the state (siblings-register: a read pins the live set to
    what it saw, retiring the rest): how many reads not yet linearized observe each value.

    A value no remaining read observes can be dropped from the state (`project`): nothing left
    can tell whether it is live. And a read that retires only such values is forced: trying the
    alternatives to it cannot lead anywhere new."""

    __slots__ = ("on", "left", "values", "model")

    def __init__(self, oks: list[OkOp], model: Model, readonly: list[bool]) -> None:
        self.model = model
        self.on = type(model).retired is not Model.retired
        self.left: dict[Any, int] = defaultdict(int)
        self.values: list[tuple[Any, ...]] = [()] * len(oks)
        if self.on:
            for i, o in enumerate(oks):
                if readonly[i]:
                    self.values[i] = tuple(model.observes(o[2]) or ())
                    for v in self.values[i]:
                        self.left[v] += 1

    def take(self, i: int) -> None:
        for v in self.values[i]:
            self.left[v] -= 1

    def give_back(self, i: int) -> None:
        for v in self.values[i]:
            self.left[v] += 1

    def forces(self, before: Any, after: Any) -> bool:
        left = self.left
        return not any(left[v] for v in self.model.retired(before, after))

    def project(self, state: Any) -> Any:
        return self.model.project(state, self.left.__getitem__)


class Limits:
    """The budget: a shared deadline (time.monotonic, the same clock in every process) and the
    memo's estimated size. Checked every few thousand steps, so its cost does not show."""

    EVERY = 0xFFF

    __slots__ = ("key", "deadline", "memory_bytes", "max_entries")

    def __init__(self, key: Any, deadline: float, memory_bytes: int, n_ops: int) -> None:
        self.key, self.deadline, self.memory_bytes = key, deadline, memory_bytes
        per_entry = 150 + n_ops // 7  # tuple + table slot + bitset ints, roughly
        self.max_entries = max(1000, memory_bytes // per_entry)

    def check(self, memo_size: int) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfBudget(f"the time budget ran out while checking key {self.key!r} "
                              f"after {memo_size} configurations")
        if memo_size > self.max_entries:
            raise OutOfBudget(
                f"the memory budget ({self.memory_bytes // 2**20} MiB) ran out while checking "
                f"key {self.key!r} after {memo_size} configurations")


# how a frame was entered: FORCED (a read that fitted and changed nothing, or an UNREAD write at
# its deadline: no alternative is worth trying when it fails), OK (an ordinary choice: the next
# candidate is tried after it); an info op's frame records the dead end it was tried at instead
FORCED, OK = -1, 0


def search_steps(key: Any, model: Model, oks: list[OkOp], infos: list[InfoOp],
                 deadline: float, memory_bytes: int) -> Generator[int, None, KeyResult]:
    """Is there a linearization of one key's operations? `oks` must each take effect between
    their two positions; `infos` at any point after theirs, or never. A generator: it pauses
    every few thousand steps, yielding how many configurations it has explored, so that a caller
    can interleave keys, and returns the result (raises OutOfBudget when the budget runs out).
    The pauses fall at the same points on every run."""
    started = time.monotonic()
    m = len(oks)
    entries = Entries(oks)
    info = InfoOps(infos)
    memo = Memo(model)
    limits = Limits(key, deadline, memory_bytes, m + info.n)
    data = [o[2] for o in oks]
    readonly = [o[2][0] in model.readonly for o in oks]
    reads = ReadsToCome(oks, model, readonly)
    absorber = Absorber(oks, entries)
    absorbs = [model.overwrites(op) for op in data]
    info_absorbs = [model.overwrites(op) for op in info.ops]
    step, remember, unread, opi = model.step, memo.add, absorber.unread, entries.opi
    nxt, is_call, tail, reads_on = entries.nxt, entries.is_call, entries.tail, reads.on
    any_unread, has_info = absorber.any, info.n > 0
    lift, unlift, epos = entries.lift, entries.unlift, entries.pos

    def result(verdict: str) -> KeyResult:
        return KeyResult(key, verdict, m, info.n, 0, memo.size,
                         seconds=time.monotonic() - started)

    state = model.init
    obits = ibits = 0  # ok and info operations linearized, as bitsets
    # frames: (call entry for an ok op, or -1-j for info op j; state before; how entered;
    # UNREAD call entries absorbed with it)
    stack: list[tuple[int, Any, int, tuple[int, ...]]] = []
    best: tuple[list[tuple[int, Any, int, tuple[int, ...]]], Any, int] | None = None
    entry = nxt[0]
    info_from = -1  # >= 0: at the dead end `blocked`, trying info ops from this index on
    blocked = 0
    iters = 0
    if entry == tail:
        return result("valid")
    while True:
        iters += 1
        if not iters & Limits.EVERY:
            limits.check(memo.size)
            yield memo.size
        if info_from < 0:
            if is_call[entry]:
                # 1. a candidate: linearize it if it fits and the configuration is new
                i = opi[entry]
                if unread[i]:
                    entry = nxt[entry]
                    continue
                new = step(state, data[i])
                if new is not INVALID:
                    taken = absorber.taken_before() if any_unread and absorbs[i] else ()
                    nb = obits | (1 << i)
                    for e in taken:
                        nb |= 1 << opi[e]
                    # a read that fits now and changes nothing may as well go now
                    forced = readonly[i] and new is state
                    if reads_on:
                        if readonly[i]:
                            reads.take(i)
                            forced = forced or reads.forces(state, new)
                        new = reads.project(new)
                    if remember((nb, new), ibits):
                        stack.append((entry, state, FORCED if forced else OK, taken))
                        state, obits = new, nb
                        lift(entry)
                        for e in taken:
                            lift(e)
                        entry = nxt[0]
                        if entry == tail:
                            return result("valid")
                        continue
                    if reads_on and readonly[i]:
                        reads.give_back(i)
                entry = nxt[entry]
                continue
            blocked = entry  # 2. a return: its operation should have taken effect by now
            info_from = 0
        # 3. at a dead end: an info op may be what was missing
        placed = False
        for j in info.eligible(info_from, epos[blocked], ibits) if has_info else ():
            new = step(state, info.ops[j])
            if new is INVALID:
                continue
            if reads_on:
                new = reads.project(new)
            taken = absorber.taken_before() if any_unread and info_absorbs[j] else ()
            nb = obits
            for e in taken:
                nb |= 1 << opi[e]
            if remember((nb, new), ibits | 1 << j):
                stack.append((-1 - j, state, blocked, taken))
                state, ibits, obits = new, ibits | 1 << j, nb
                for e in taken:
                    lift(e)
                placed = True
                break
        if placed:
            info_from = -1
            entry = nxt[0]
            if entry == tail:
                return result("valid")
            continue
        i = opi[blocked]
        if unread[i]:  # 4. an UNREAD write at its deadline goes now
            e = entries.call_of[i]
            new = step(state, data[i])
            if reads_on and new is not INVALID:
                new = reads.project(new)
            nb = obits | (1 << i)
            if new is not INVALID and remember((nb, new), ibits):
                stack.append((e, state, FORCED, ()))
                state, obits = new, nb
                lift(e)
                info_from = -1
                entry = nxt[0]
                if entry == tail:
                    return result("valid")
                continue
        # 5. backtrack, remembering the deepest dead end for the evidence
        if best is None or len(stack) > len(best[0]):
            best = (list(stack), state, blocked)
        resumed = False
        while stack:
            ref, state, kind, taken = stack.pop()
            for e in reversed(taken):
                obits ^= 1 << opi[e]
                unlift(e)
            if ref < 0:  # retry the dead end with the next info op
                j = -1 - ref
                ibits ^= 1 << j
                blocked, info_from = kind, j + 1
                resumed = True
                break
            obits ^= 1 << opi[ref]
            unlift(ref)
            if reads_on:
                reads.give_back(opi[ref])
            if kind == OK:  # try the next candidate after it
                entry, info_from = nxt[ref], -1
                resumed = True
                break
            # a forced step failed: the configuration before it fails too, keep undoing
        if not resumed:
            break
    assert best is not None
    return _deepest(key, model, oks, infos, entries, best, result("invalid"))


def _deepest(key: Any, model: Model, oks: list[OkOp], infos: list[InfoOp], entries: Entries,
             best: tuple[list[tuple[int, Any, int, tuple[int, ...]]], Any, int],
             out: KeyResult) -> KeyResult:
    """Rebuild the deepest configuration reached to name what could not follow it."""
    frames, state, blocked = best
    prefix: list[Call] = []
    done: set[int] = set()
    for ref, _, _, taken in frames:
        for e in taken:  # absorbed UNREAD writes went just before their overwriting op
            prefix.append(oks[entries.opi[e]][3])
            done.add(entries.opi[e])
        if ref >= 0:
            prefix.append(oks[entries.opi[ref]][3])
            done.add(entries.opi[ref])
        else:
            prefix.append(infos[-1 - ref][2])
    limit = entries.pos[blocked]
    for i, o in enumerate(oks):
        if i in done or o[0] >= limit:
            continue
        if model.step(state, o[2]) is INVALID:
            why = model.why_not(state, o[2])
        else:
            why = "it could take effect here, but every continuation after it fails"
        out.unplaceable.append((o[3], why))
    out.prefix, out.state = prefix, state
    out.blocking = oks[entries.opi[blocked]][3]
    return out
