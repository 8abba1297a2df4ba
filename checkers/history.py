"""Operations, the readers for `history.jsonl` and Jepsen EDN, and invoke/completion pairing.

A history is a list of `Op` records in the order they were written. `pair` turns it into `Call`s:
one invocation with its completion (`ok`, `fail`, `info`) or none (still pending when the history
ended, which counts as `info`: it may or may not have happened).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"


class HistoryError(ValueError):
    """A history that cannot be read; the message names the file and line."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        self.source = source
        self.line = line
        self.problem = problem
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {problem}")


@dataclass(slots=True)
class Op:
    """One history record (an invocation or a completion)."""

    index: int
    time: int
    process: int | str
    type: str
    f: str
    value: Any = None
    key: str | None = None
    node: str | None = None
    clock: dict[str, int] | None = None
    siblings: int | None = None
    error: str | None = None
    final: bool = False
    fault: str | None = None
    line: int | None = None
    # register writes/deletes: the values the read before them returned (None: not recorded)
    read: list[Any] | None = None

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index, "time": self.time, "process": self.process,
            "type": self.type, "f": self.f, "value": self.value,
        }
        for name in ("key", "node", "clock", "siblings", "error", "fault", "read"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.final:
            out["final"] = True
        return out


@dataclass(slots=True)
class Call:
    """An invocation and its completion; `complete` is None when the history ended first."""

    invoke: Op
    complete: Op | None
    pos: int  # position of the invocation in the history
    end_pos: int | None  # position of the completion, None when pending

    @property
    def type(self) -> str:
        """ok, fail or info (a pending call is info: it may have happened)."""
        return self.complete.type if self.complete is not None else "info"

    @property
    def process(self) -> int | str:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def key(self) -> str | None:
        return self.invoke.key

    @property
    def time(self) -> int:
        return self.invoke.time

    @property
    def end(self) -> int | None:
        return self.complete.time if self.complete is not None else None

    @property
    def result(self) -> Any:
        """The completion's value (the read's answer), or None when it did not complete ok."""
        c = self.complete
        return c.value if c is not None and c.type == "ok" else None

    @property
    def final(self) -> bool:
        return self.invoke.final or (self.complete is not None and self.complete.final)

    @property
    def index(self) -> int:
        return self.invoke.index

    @property
    def node(self) -> str | None:
        """The node the request went to (the invocation's, else the completion's)."""
        if self.invoke.node is not None or self.complete is None:
            return self.invoke.node
        return self.complete.node

    @property
    def error(self) -> str | None:
        return self.complete.error if self.complete is not None else "no completion recorded"

    @property
    def siblings(self) -> int | None:
        return self.complete.siblings if self.complete is not None else None

    @property
    def latency_ms(self) -> float | None:
        end = self.end
        return None if end is None else (end - self.time) / 1_000_000

    @property
    def shown_value(self) -> Any:
        """What to show for the call: the ok completion's value when it has one (a read's
        answer), else the invocation's argument."""
        result = self.result
        return result if result is not None else self.invoke.value

    def to_dict(self) -> dict[str, Any]:
        """The evidence shape: invoke `time`, completion `end` (ns), process, f, value, type."""
        c = self.complete
        value = c.value if c is not None and c.type == "ok" else self.invoke.value
        out: dict[str, Any] = {
            "process": self.invoke.process, "f": self.invoke.f, "value": value,
            "type": self.type, "time": self.invoke.time, "end": self.end,
            "index": self.invoke.index,
        }
        if self.invoke.key is not None:
            out["key"] = self.invoke.key
        if c is not None:
            out["end_index"] = c.index
            if c.value != self.invoke.value and c.type == "ok":
                out["invoke_value"] = self.invoke.value
            for name in ("node", "clock", "siblings", "error"):
                v = getattr(c, name)
                if v is not None:
                    out[name] = v
        if self.final:
            out["final"] = True
        return out


# ---------------------------------------------------------------- history.jsonl


def _require(d: dict[str, Any], name: str, source: str, line: int | None) -> Any:
    if name not in d:
        raise HistoryError(source, line, f"missing field {name!r}")
    return d[name]


def op_from_dict(d: Any, source: str, line: int | None, ordinal: int) -> Op:
    """Build an Op from one decoded record, checking the fields every record must have."""
    if not isinstance(d, dict):
        raise HistoryError(source, line, f"expected a JSON object, got {type(d).__name__}")
    process = _require(d, "process", source, line)
    if isinstance(process, bool) or not isinstance(process, int | str):
        raise HistoryError(source, line,
                           f"'process' must be an integer or \"nemesis\": {process!r}")
    typ = _require(d, "type", source, line)
    if typ not in TYPES:
        raise HistoryError(source, line, f"'type' must be one of {', '.join(TYPES)}: {typ!r}")
    f = _require(d, "f", source, line)
    if not isinstance(f, str):
        raise HistoryError(source, line, f"'f' must be a string: {f!r}")
    index = d.get("index", ordinal)
    time = d.get("time", ordinal)
    if isinstance(time, bool) or not isinstance(time, int | float):
        raise HistoryError(source, line, f"'time' must be a number of nanoseconds: {time!r}")
    key = d.get("key")
    return Op(
        index=index if isinstance(index, int) else ordinal,
        time=int(time),
        process=process,
        type=typ,
        f=f,
        value=d.get("value"),
        key=None if key is None else str(key),
        node=d.get("node"),
        clock=d.get("clock") if isinstance(d.get("clock"), dict) else None,
        siblings=d.get("siblings") if isinstance(d.get("siblings"), int) else None,
        error=None if d.get("error") is None else str(d.get("error")),
        final=bool(d.get("final", False)),
        fault=d.get("fault"),
        line=line,
        read=d.get("read") if isinstance(d.get("read"), list) else None,
    )


# 19 digits in a row: perhaps an integer beyond 64 bits, which orjson reads as a float. Found by
# mapping every digit to "0" and anything else to " " (bytes.translate, then a substring search:
# several times faster than a regular expression)
_DIGITS_AS_ZERO = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))
_LONG_DIGITS = b"0" * 19
# orjson reads any depth; json stops at the recursion limit (RecursionError, which the readers
# report as "nested too deeply"): a line with this many brackets is left to json
_FAST_BRACKETS = 512


def loads_json(raw: bytes) -> Any:
    """`json.loads(raw.decode("utf-8"))`, the same objects and the same errors, several times
    faster: orjson, with json for what orjson reads otherwise (a possible integer over 64 bits,
    nesting deeper than json's recursion limit) or refuses (NaN, Infinity, a lone surrogate, bad
    UTF-8), which json then reads or refuses with its own message."""
    if (raw.count(b"[") + raw.count(b"{") <= _FAST_BRACKETS
            and _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO)):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw.decode("utf-8"))


def _default_warn(message: str) -> None:
    warnings.warn(message, TornLineWarning, stacklevel=3)


class TornLineWarning(UserWarning):
    """A JSON Lines file ended in the middle of a line (its writer was killed); that line was
    dropped."""


def iter_jsonl_rows(path: Path, warn: Callable[[str], None] | None = None,
                    ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line of a JSON Lines file, read a line at a time: the one
    policy for every JSONL file the harness reads (`history.jsonl`, `resources.jsonl`,
    `stats.jsonl`; docs/history.md).

    Blank lines are skipped. A line that is not UTF-8, not JSON, or not a JSON object raises
    HistoryError naming the file, the line and what is wrong, with one exception: the last line
    of a file that does not end in a newline is what a writer killed mid-line leaves, so when it
    does not parse it is dropped and `warn` is told why (by default a TornLineWarning). The
    harness's own writers put one whole object and its newline per write, so they never leave a
    bad line otherwise."""
    source = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; lines are read one ahead
    except OSError as e:
        raise HistoryError(source, None, f"cannot read: {e}") from e
    with f:
        n, raw = 0, f.readline()
        while raw:
            n += 1
            nxt = f.readline()
            if raw.strip():
                problem = None
                try:
                    obj = loads_json(raw)
                except json.JSONDecodeError as e:
                    problem = f"not valid JSON: {e.msg} (column {e.colno})"
                except UnicodeDecodeError as e:
                    problem = f"not UTF-8 ({e.reason} at byte {e.start + 1})"
                else:
                    if not isinstance(obj, dict):
                        problem = f"expected a JSON object, got {type(obj).__name__}"
                if problem is not None:
                    if not nxt and not raw.endswith(b"\n"):  # the torn last line
                        (warn or _default_warn)(
                            f"{source} line {n}: the last line is incomplete ({problem}), as a "
                            "writer killed mid-line leaves it; it is ignored")
                        return
                    raise HistoryError(source, n, problem)
                yield n, obj
            raw = nxt


def read_jsonl_rows(path: Path, warn: Callable[[str], None] | None = None,
                    ) -> list[tuple[int, dict[str, Any]]]:
    """`iter_jsonl_rows`, as a list."""
    return list(iter_jsonl_rows(path, warn))


def read_jsonl(path: Path, warn: Callable[[str], None] | None = None) -> list[Op]:
    """Read `history.jsonl` (the bad-line policy of `read_jsonl_rows`); a record missing a
    field every operation has, or with a wrong type, raises HistoryError naming its line."""
    source = str(path)
    ops: list[Op] = []
    for n, d in read_jsonl_rows(path, warn):
        ops.append(op_from_dict(d, source, n, len(ops)))
    return ops


# ---------------------------------------------------------------- Jepsen EDN


def _from_edn(x: Any) -> Any:
    """EDN values as plain Python: keywords and symbols become their names, vectors lists."""
    import edn_format

    if isinstance(x, edn_format.Keyword | edn_format.Symbol):
        return x.name
    if isinstance(x, dict):  # ImmutableDict is a Mapping, not a dict: handled below
        return {_key(k): _from_edn(v) for k, v in x.items()}
    if isinstance(x, edn_format.ImmutableDict):
        return {_key(k): _from_edn(v) for k, v in x.items()}
    if isinstance(x, list | tuple | edn_format.ImmutableList):
        return [_from_edn(v) for v in x]
    if isinstance(x, set | frozenset):
        return sorted((_from_edn(v) for v in x), key=repr)
    return x


def _key(k: Any) -> Any:
    v = _from_edn(k)
    return v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v)


def _edn_op(d: Any, source: str, line: int | None, ordinal: int) -> Op:
    if not isinstance(d, dict):
        raise HistoryError(source, line, f"expected an EDN map {{:process .. :type ..}}, got {d!r}")
    rec = dict(d)
    rec.setdefault("index", ordinal)
    return op_from_dict(rec, source, line, ordinal)


def _edn_values(text: str, source: str) -> Iterator[tuple[int | None, Any]]:
    """(line, value) per operation. Tries one map per line first (both Jepsen layouts put one
    operation per line, optionally inside one vector); falls back to parsing the whole text."""
    import edn_format

    lines = text.split("\n")
    body = list(enumerate(lines, 1))
    # strip one enclosing vector: "[" before the first map, "]" after the last
    stripped: list[tuple[int, str]] = []
    for n, raw in body:
        s = raw.strip()
        if s:
            stripped.append((n, s))
    if stripped and stripped[0][1].startswith("[") and stripped[-1][1].endswith("]"):
        n0, s0 = stripped[0]
        n1, s1 = stripped[-1]
        stripped[0] = (n0, s0[1:].strip())
        stripped[-1] = (n1, stripped[-1][1][:-1].strip() if n1 != n0 else stripped[0][1][:-1])
        stripped = [(n, s) for n, s in stripped if s]
    out: list[tuple[int | None, Any]] = []
    first_bad: tuple[int, str] | None = None
    for n, s in stripped:
        try:
            vs = edn_format.loads_all(s)
        except Exception as e:  # edn_format raises several unrelated exception types
            first_bad = (n, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
            break
        out.extend((n, v) for v in vs)
    if first_bad is None:
        yield from out
        return
    # maybe maps span several lines: parse the whole text before blaming a line
    try:
        whole = edn_format.loads(text)
    except Exception:
        n, msg = first_bad
        raise HistoryError(source, n, f"not valid EDN ({msg})") from None
    items = whole if isinstance(whole, list | tuple | edn_format.ImmutableList) else [whole]
    for v in items:
        yield None, v  # maps spanning lines: no single line to name


# Jepsen >= 0.3 and knossos print operations as records: #jepsen.history.Op{...}
RECORD_TAGS = ("jepsen.history.Op", "knossos.op.Op")


def _register_record_tags() -> None:
    import edn_format

    for tag in RECORD_TAGS:
        edn_format.add_tag(tag, lambda m: m)


def read_edn(path: Path) -> list[Op]:
    """Read a Jepsen EDN history: a vector of maps or one map per line, with :process :type :f
    :value (and optionally :key :time :index); Jepsen's #jepsen.history.Op{...} records too.
    Keywords become strings (:ok -> "ok")."""
    _register_record_tags()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HistoryError(source, None, f"cannot read: {e}") from e
    ops: list[Op] = []
    for line, v in _edn_values(text, source):
        ops.append(_edn_op(_from_edn(v), source, line, len(ops)))
    return ops


def read_history(path: Path, warn: Callable[[str], None] | None = None) -> list[Op]:
    """Read a history by its suffix: `.edn` is Jepsen EDN, anything else JSON Lines (`warn`: see
    `read_jsonl_rows`)."""
    path = Path(path)
    if not path.exists():
        raise HistoryError(str(path), None, "no such file")
    if path.suffix == ".edn":
        return read_edn(path)
    return read_jsonl(path, warn)


# ---------------------------------------------------------------- jepsen.independent


def _is_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2


def looks_independent(ops: Iterable[Op]) -> bool:
    """True when the history has the shape of a `jepsen.independent` one: client ops, none with
    a key of its own, every invocation's value a [key value] pair (reads too: [k nil], where a
    plain history's read invokes with nil), every completion's a pair or nil."""
    seen = False
    for o in ops:
        if o.is_nemesis:
            continue
        seen = True
        if o.key is not None:
            return False
        if (o.type == "invoke" or o.value is not None) and not _is_pair(o.value):
            return False
    return seen


def _key_name(k: Any) -> str:
    return k if isinstance(k, str) else json.dumps(k, sort_keys=True, default=repr)


def split_independent(ops: Iterable[Op], source: str = "history") -> list[Op]:
    """`jepsen.independent`: `:value [k v]` becomes key k and value v. A completion with no value
    keeps none (pairing gives it its invocation's key); an op that already has a key gets
    "key/k". Any other value is an error naming the line."""
    out: list[Op] = []
    for o in ops:
        if o.is_nemesis or (o.type != "invoke" and o.value is None):
            out.append(o)
            continue
        if not _is_pair(o.value):
            raise HistoryError(source, o.line, f"an independent history's :value must be a "
                               f"[key value] pair, got {o.value!r}")
        k = _key_name(o.value[0])
        out.append(replace(o, key=k if o.key is None else f"{o.key}/{k}", value=o.value[1]))
    return out


# ---------------------------------------------------------------- pairing


def pair(ops: Iterable[Op], source: str = "history") -> tuple[list[Call], list[Op]]:
    """Client calls (in invocation order) and nemesis records.

    A completion must follow an invocation by the same process; an invocation while the process
    still has one outstanding is an error. Both name the line.
    """
    calls: list[Call] = []
    nemesis: list[Op] = []
    open_: dict[Any, int] = {}
    for pos, op in enumerate(ops):
        if op.process == NEMESIS:
            nemesis.append(op)
            continue
        if op.type == "invoke":
            if op.process in open_:
                prev = calls[open_[op.process]].invoke
                raise HistoryError(
                    source, op.line,
                    f"process {op.process} invoked {op.f!r} while its {prev.f!r} "
                    f"(line {prev.line}) had not completed",
                )
            open_[op.process] = len(calls)
            calls.append(Call(op, None, pos, None))
        else:
            i = open_.pop(op.process, None)
            if i is None:
                raise HistoryError(
                    source, op.line,
                    f"process {op.process} completed {op.f!r} ({op.type}) without invoking it",
                )
            call = calls[i]
            if call.invoke.f != op.f:
                raise HistoryError(
                    source, op.line,
                    f"process {op.process} invoked {call.invoke.f!r} but completed {op.f!r}",
                )
            call.complete = op
            call.end_pos = pos
    return calls, nemesis


def from_events(events: Iterable[tuple[Any, ...]], key: str | None = None,
                step_ns: int = 1_000_000) -> list[Op]:
    """A history from (process, type, f, value[, extras dict]) tuples, one every `step_ns`: the
    compact way to write small histories by hand."""
    ops = []
    for i, ev in enumerate(events):
        process, typ, f, value = ev[:4]
        extra = dict(ev[4]) if len(ev) > 4 else {}
        ops.append(Op(index=i, time=extra.pop("time", i * step_ns), process=process, type=typ,
                      f=f, value=value, key=extra.pop("key", key), line=i + 1, **extra))
    return ops
