"""Sequential models for the linearizability checker.

A model turns each operation into a small tuple once (`prepare`), then `step(state, op)` answers
the next state or `INVALID`. States are hashable (the search memoises on them). Values are frozen:
lists become tuples, dicts sorted tuples of items.

Models (each is checked per key, since all of them are P-compositional over keys):

- `register`: `write v`, `read -> v`. A read answering a list (our register workload's sibling
  list) counts as its single value; `[]` is the empty register; two or more siblings cannot be
  explained by a register, and such a read cannot be placed.
- `cas-register`: `register` plus `cas [old, new]` (Jepsen's etcd test): ok only if the register
  holds `old`, then it holds `new`. A `fail`ed cas certainly did not happen and is ignored (as
  Knossos), unless the check observes failed cas (Porcupine's etcd model): then it is a read that
  saw some value other than `old` at one point during the call (`prepare_failed`).
- `kv`: one key's value: `put`/`write v`, `get`/`read -> v`, `append x` (the value becomes the list
  so far plus x, or the string so far plus x).
- `set`: `add x`, `read -> [elements]` (compared as a set).
- `siblings-register`: the register a Dynamo store offers, whose reads answer a set of siblings.
  What it accepts, and why: a write retires the siblings its writer read (it sends their context)
  and adds its own value; concurrent writers each retire only what they saw, so several values can
  be live at once. As a sequential object that is: `write v` makes `v` the newest value and keeps
  any subset of the values that were live; `read -> S` is allowed exactly when S contains the
  newest write and every other member of S is still live (a value missing from one read has been
  retired and cannot come back, since only a write of that value could add it and values are
  unique). The state is (newest, values that may still be live); each read pins the live set
  down to what it saw. It still forbids the anomalies that matter: a stale read that misses the
  newest write, a resurrected value, a value never written.
  `delete -> [values]` (the ok value names the values its tombstone covers, as our register
  workload records it) retires exactly those values: the newest write too if it is among them,
  after which a read may answer any subset of the values still live (siblings the delete did not
  cover, written concurrently), `[]` included. A delete whose values are unknown (an `info`
  delete that recorded nothing) may have retired any of them. A delete never fails to apply: the
  values it names were read before it, not at its linearization point.

Every model starts from its own empty state (`init`) unless given an initial value
(`get_model(name, initial)`, `harness check --initial`), applied to each key.

Writing a model (a subclass of `Model`; tests/test_checkers_example_model.py has one):

- Required: `name`; `fs`, the operation names it accepts in a history mapped to its own; `init`,
  the state of a key nobody touched (hashable); and `step(state, op) -> new state or INVALID`,
  where op is `(f, argument, result)` as `prepare` made it (the result is None for an op whose
  outcome is unknown). That is all the search needs to be exact.
- Optional, each a reduction or a nicer message, each with a default that keeps the search exact:
  `readonly` (ops that never change the state: info ones are dropped, ok ones placed eagerly;
  default none), `prepare` (freeze and normalise arguments and results), `prepare_failed` (a
  failed op as an observation), `set_initial`, `introduces` / `observes` / `canonical_op` /
  `overwrites` (values nobody reads are merged into one stand-in, writes of them placed for
  free), `retired` / `project` (reads that change the state), `has_dominance` / `split` (states
  ordered by inclusion), `describe` / `why_not` (the words of the explanation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ModelError(ValueError):
    """An operation the model does not know (names the operation)."""


class _Invalid:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


class _Unread:
    """Stands for every written value that no operation ever observes: they are interchangeable
    (no read can answer them), so the search may treat them as one, which collapses states."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "a value no read returns"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return "UNREAD"


UNREAD: Any = _Unread()
MULTI: Any = ("<several siblings>",)  # a read with several siblings: never equals a register state

READ, WRITE, CAS, APPEND, ADD, DELETE = "read", "write", "cas", "append", "add", "delete"
FAILED_CAS = "cas failed"  # a failed cas as an observation: the register did not hold `old`


def freeze(v: Any) -> Any:
    """A hashable copy of a JSON-like value."""
    if isinstance(v, list | tuple):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), freeze(x)) for k, x in v.items()))
    if isinstance(v, set | frozenset):
        return frozenset(freeze(x) for x in v)
    return v


def as_set(value: Any) -> set[Any]:
    """A read's answer as a set of frozen elements (fast for the usual ints and strings)."""
    if value is None:
        return set()
    if isinstance(value, list | tuple | set | frozenset):
        try:
            return set(value)
        except TypeError:  # unhashable elements (lists, objects): freeze them one by one
            return {freeze(v) for v in value}
    return {freeze(value)}


def show(v: Any) -> str:
    """A value as a person reads it (tuples back as JSON-ish lists)."""
    if isinstance(v, frozenset):
        return "{" + ", ".join(sorted(show(x) for x in v)) + "}"
    if isinstance(v, tuple):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if v is None:
        return "nothing"
    return repr(v) if isinstance(v, str) else str(v)


class Model:
    """The interface every model implements (the module's docstring says which parts a new
    model must give and which are optional)."""

    name = ""
    init: Any = None
    fs: dict[str, str] = {}  # history f -> canonical f
    readonly: frozenset[str] = frozenset()  # none by default: always sound

    def canonical(self, f: str) -> str:
        try:
            return self.fs[f]
        except KeyError:
            known = ", ".join(sorted(self.fs))
            raise ModelError(f"the {self.name} model has no operation {f!r} (it knows {known})") \
                from None

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        """(f, argument, result) frozen; `completed` False means the result is unknown."""
        return f, freeze(arg), freeze(result) if completed else None

    def prepare_failed(self, f: str, arg: Any) -> tuple[str, Any, Any] | None:
        """A `fail`ed op as an observation it still made, or None: it did nothing (Knossos)."""
        return None

    def set_initial(self, value: Any) -> None:
        """Start every key at `value` (a JSON value) instead of the empty state."""
        self.init = freeze(value)

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        raise NotImplementedError

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        """Values this op puts into the state (None: cannot tell, never prune it)."""
        return None

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        """Values this op's success depends on seeing (None: it depends on every value, e.g.
        "anything but v", which turns off the reductions that merge unobserved values)."""
        return ()

    def canonical_op(self, op: tuple[str, Any, Any], observed: set[Any]) -> tuple[str, Any, Any]:
        """The op with values nobody observes replaced by UNREAD (identity unless safe)."""
        return op

    def overwrites(self, op: tuple[str, Any, Any]) -> bool:
        """True when the op's result state hides whatever UNREAD write came just before it, so
        pending UNREAD writes may be placed right before it for free."""
        return False

    def retired(self, before: Any, after: Any) -> Iterable[Any]:
        """Values a read made unavailable to later reads (only models whose reads change the
        state override this, and then also `project`)."""
        return ()

    def project(self, state: Any, needed: Any) -> Any:
        """The state without values no remaining read can observe (`needed(v)` is falsy)."""
        return state

    # Models whose states are ordered (one allows everything another allows) say so here: the
    # search then skips a state that an explored state with the same exact part covers.
    has_dominance = False

    def split(self, state: Any) -> tuple[Any, frozenset[Any]]:
        """(exact part, a set such that a bigger set allows at least as much)."""
        raise NotImplementedError

    def describe(self, state: Any) -> str:
        return f"the {self.name} holds {show(state)}"

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        f, arg, res = op
        return f"{f} {show(arg)} cannot follow when {self.describe(state)}"


def _register_read(result: Any) -> Any:
    """A read's answer as a register value: lists are sibling lists (ours), scalars Jepsen's."""
    if isinstance(result, tuple):
        if not result:
            return None
        if len(result) == 1:
            return result[0]
        return MULTI
    return result


class Register(Model):
    name = "register"
    readonly = frozenset({READ})
    fs = {"read": READ, "write": WRITE, "r": READ, "w": WRITE}

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        f = self.canonical(f)
        res = _register_read(freeze(result)) if completed and f == READ else None
        return f, freeze(arg), res

    def set_initial(self, value: Any) -> None:
        self.init = _register_read(freeze(value))  # read as a read's answer: [] is empty

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        f, arg, res = op
        if f == READ:
            return state if res == state else INVALID
        if f == WRITE:
            return arg
        return self._step_more(state, op)

    def _step_more(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        return INVALID

    def overwrites(self, op: tuple[str, Any, Any]) -> bool:
        return op[0] == WRITE

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        f, arg, _ = op
        if f == WRITE:
            return (arg,)
        return ()

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        f, _, res = op
        return (res,) if f == READ else ()

    def canonical_op(self, op: tuple[str, Any, Any], observed: set[Any]) -> tuple[str, Any, Any]:
        f, arg, res = op
        if f == WRITE and arg not in observed:
            return f, UNREAD, res
        if f == CAS and arg[1] not in observed:
            return f, (arg[0], UNREAD), res
        return op

    def describe(self, state: Any) -> str:
        return "the register is empty" if state is None else f"the register holds {show(state)}"

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        f, arg, res = op
        if f == READ:
            if res is MULTI:
                return "a register read cannot answer several siblings"
            return f"the read answered {show(res)} while {self.describe(state)}"
        return super().why_not(state, op)


class CasRegister(Register):
    name = "cas-register"
    fs = {**Register.fs, "cas": CAS}
    readonly = frozenset({READ, FAILED_CAS})

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        op = super().prepare(f, arg, result, completed)
        if op[0] == CAS and not (isinstance(op[1], tuple) and len(op[1]) == 2):
            raise ModelError(f"cas needs [old, new] as its value, got {arg!r}")
        return op

    def prepare_failed(self, f: str, arg: Any) -> tuple[str, Any, Any] | None:
        if self.fs.get(f) != CAS:  # any other failed op did nothing and saw nothing
            return None
        op = self.prepare(f, arg, None, False)
        return FAILED_CAS, op[1], None

    def _step_more(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        old, new = op[1]
        if op[0] == FAILED_CAS:
            return state if state != old else INVALID
        return new if state == old else INVALID

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        if op[0] == CAS:
            return (op[1][1],)
        return super().introduces(op)

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        if op[0] == CAS:
            return (op[1][0],)
        if op[0] == FAILED_CAS:
            return None  # "anything but old": an unobserved write may be what it saw
        return super().observes(op)

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        if op[0] == CAS:
            old, new = op[1]
            return f"cas {show(old)} -> {show(new)} needs {show(old)} while {self.describe(state)}"
        if op[0] == FAILED_CAS:
            old, new = op[1]
            return (f"the failed cas {show(old)} -> {show(new)} must have seen a value other than "
                    f"{show(old)}, but {self.describe(state)}")
        return super().why_not(state, op)


LIST_SHAPE: Any = ("<the value is a list>",)  # what a non-string append needs (kv)


class KV(Model):
    name = "kv"
    readonly = frozenset({READ})
    fs = {"get": READ, "read": READ, "put": WRITE, "write": WRITE, "append": APPEND}

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        f = self.canonical(f)
        return f, freeze(arg), freeze(result) if completed and f == READ else None

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        f, arg, res = op
        if f == READ:
            return state if res == state else INVALID
        if f == WRITE:
            return arg
        if state is None:
            return arg if isinstance(arg, str) else (arg,)
        if isinstance(state, str) and isinstance(arg, str):
            return state + arg
        if isinstance(state, tuple):
            return state + (arg,)
        return INVALID

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        f, arg, _ = op
        if isinstance(arg, str):
            return None  # string appends concatenate: elements cannot be told apart
        if f == WRITE:
            if not isinstance(arg, tuple):
                return (arg,)
            # from a string start, a list put also lets non-string appends succeed (`observes`)
            return arg + (LIST_SHAPE,) if arg and isinstance(self.init, str) else arg
        return (arg,) if f == APPEND else ()

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        f, arg, res = op
        if f == APPEND and isinstance(self.init, str) and not isinstance(arg, str):
            # appending a non-string to a string fails: a put of a list, even one nobody reads,
            # may be what lets it succeed, so such puts must not be dropped
            return (LIST_SHAPE,)
        if f != READ:
            return ()
        return res if isinstance(res, tuple) else (res,)

    def describe(self, state: Any) -> str:
        return "the key is absent" if state is None else f"the key holds {show(state)}"

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        f, arg, res = op
        if f == READ:
            return f"the get answered {show(res)} while {self.describe(state)}"
        return f"cannot append {show(arg)} when {self.describe(state)}"


class _SetValuedReads(Model):
    """Models whose reads answer a set of values and whose one writing op (`writer`) puts its
    argument in play: they share how ops are prepared and which values they introduce/observe."""

    readonly = frozenset({READ})  # siblings-register reads retire values: see `retired`

    writer = ""

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        f = self.canonical(f)
        res = None
        if completed and f == READ:
            r = freeze(result)
            res = frozenset(r) if isinstance(r, tuple | frozenset) else frozenset(
                () if r is None else (r,))
        return f, freeze(arg), res

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        return (op[1],) if op[0] == self.writer else ()

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        return op[2] if op[0] == READ else ()

    def canonical_op(self, op: tuple[str, Any, Any], observed: set[Any]) -> tuple[str, Any, Any]:
        f, arg, res = op
        return (f, UNREAD, res) if f == self.writer and arg not in observed else op


class SetModel(_SetValuedReads):
    name = "set"
    init = frozenset()
    fs = {"add": ADD, "read": READ}
    writer = ADD

    def set_initial(self, value: Any) -> None:
        if value is not None and not isinstance(value, list):
            raise ModelError(f"the set model's initial value must be a list, got {value!r}")
        self.init = frozenset(as_set(freeze(value)))

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        f, arg, res = op
        if f == READ:
            return state if res == state else INVALID
        return state if arg in state else state | {arg}

    def describe(self, state: Any) -> str:
        return f"the set holds {show(state)}"

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        f, arg, res = op
        if f == READ:
            missing, extra = state - res, res - state
            parts = []
            if missing:
                parts.append(f"misses {show(frozenset(missing))}")
            if extra:
                parts.append(f"has {show(frozenset(extra))} that the set does not")
            return f"the read answered {show(res)}, which " + " and ".join(parts)
        return super().why_not(state, op)


class SiblingsRegister(_SetValuedReads):
    """State: (newest write or None, frozenset of older values that may still be live). Newest
    None: nothing written, or a delete retired the newest write."""

    name = "siblings-register"
    init = (None, frozenset())
    fs = {"read": READ, "write": WRITE, "delete": DELETE}
    writer = WRITE

    def prepare(self, f: str, arg: Any, result: Any, completed: bool) -> tuple[str, Any, Any]:
        if self.canonical(f) != DELETE:
            return super().prepare(f, arg, result, completed)
        # the values it removed: the ok value, else what the invocation named, else unknown
        named = result if completed else arg
        if isinstance(named, list | tuple):
            return DELETE, frozenset(as_set(freeze(named))), None
        return DELETE, None, None

    def set_initial(self, value: Any) -> None:
        v = freeze(value)
        if isinstance(v, tuple):
            if len(v) > 1:
                raise ModelError("the siblings-register model's initial value must be one value, "
                                 f"got {value!r}")
            v = v[0] if v else None
        self.init = (v, frozenset())  # as if written before everything: reads must show it

    def step(self, state: Any, op: tuple[str, Any, Any]) -> Any:
        f, arg, res = op
        newest, live = state
        if f == WRITE:  # UNREAD never joins the live set: no read can answer it anyway
            return (arg, live if newest is None or newest is UNREAD else live | {newest})
        if f == DELETE:
            if arg is None:  # unknown: it may have retired any value, so each may still be live
                return (None, live if newest is None or newest is UNREAD else live | {newest})
            # arg holds observed values only (`observes`), so an UNREAD newest is never in it
            return (None if newest in arg else newest, live - arg)
        if newest is None:  # any live subset, `[]` too
            if not res <= live:
                return INVALID
            return (None, res) if res != live else state
        if newest not in res:
            return INVALID
        rest = res - {newest}
        if not rest <= live:
            return INVALID
        return (newest, rest) if rest != live else state

    def introduces(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        return (op[1],) if op[0] == WRITE else ()

    def observes(self, op: tuple[str, Any, Any]) -> Iterable[Any] | None:
        if op[0] == DELETE:  # keeps the values it names apart from UNREAD
            return op[1] or ()
        return super().observes(op)

    def overwrites(self, op: tuple[str, Any, Any]) -> bool:
        # a delete of unknown values hides an UNREAD newest as a write does (same state after)
        return op[0] == WRITE or (op[0] == DELETE and op[1] is None)

    # more values still live allows every read that fewer would (and writes keep the order)
    has_dominance = True

    def split(self, state: Any) -> tuple[Any, frozenset[Any]]:
        return state

    def retired(self, before: Any, after: Any) -> Iterable[Any]:
        return before[1] - after[1]

    def project(self, state: Any, needed: Any) -> Any:
        newest, live = state
        if not live:
            return state
        kept = frozenset(v for v in live if needed(v))
        return state if len(kept) == len(live) else (newest, kept)

    def describe(self, state: Any) -> str:
        newest, live = state
        if newest is None:
            if live:
                return f"the newest write was deleted and {show(live)} may still be live"
            return "nothing has been written (or all was deleted)"
        if not live:
            return f"the newest write is {show(newest)} and no older value is live"
        return f"the newest write is {show(newest)} and {show(live)} may still be live"

    def why_not(self, state: Any, op: tuple[str, Any, Any]) -> str:
        f, arg, res = op
        newest, live = state
        if f != READ:
            return super().why_not(state, op)
        if newest is None:
            return (f"the read answered {show(res)}, but {show(frozenset(res - live))} "
                    f"cannot be live: {self.describe(state)}")
        if newest not in res:
            return f"the read answered {show(res)}, missing the newest write {show(newest)}"
        return (f"the read answered {show(res)}, but {show(frozenset(res - {newest} - live))} "
                "had already been retired")


MODELS: dict[str, type[Model]] = {
    "register": Register,
    "cas-register": CasRegister,
    "kv": KV,
    "set": SetModel,
    "siblings-register": SiblingsRegister,
}


def get_model(name: str, initial: Any = None) -> Model:
    """A model by name, starting every key at `initial` (a JSON value; None: the model's empty
    state); a clear error lists the known models."""
    try:
        model = MODELS[name]()
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None
    if initial is not None:
        model.set_initial(initial)
    return model
