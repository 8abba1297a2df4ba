"""What every workload provides: the next operation, how to perform it, and the final reads."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.client import Client, OpFailed, OpUnknown, Reply
from harness.workloads.keys import KeySpace


@dataclass(frozen=True)
class Request:
    """An operation a workload asks a client to perform: `f`, its key (or None) and its
    argument. The runner records it as an `invoke`, then its `Completion`; what the checkers
    read back is a `checkers.history.Op`."""

    f: str
    key: str | None
    value: Any = None


@dataclass
class Completion:
    """How an operation ended: `type` ok|fail|info, the result value, and history extras."""

    type: str
    value: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Workload(ABC):
    """A workload owns its key space and its unique values; it is driven from one event loop."""

    name: str = ""
    description: str = ""
    read_fs: frozenset[str] = frozenset({"read"})
    #: the client operations it uses (harness.client.OPS); a store lacking one is refused
    needs: frozenset[str] = frozenset()

    key_prefix: str = ""  # keys are named <key_prefix><index>; "" means "<name>-"
    #: keys retire after this many operations unless --ops-per-key says otherwise (0: never),
    #: as Jepsen's `independent` generator does: a run covers many keys, each history stays short
    default_ops_per_key: int = 0
    #: with rotation, how often a retiring key is replaced by a long-idle retired one instead of
    #: a fresh key (keys.py: a user coming back, with the contexts read before)
    revisit: float = 0.0

    def __init__(self, keys: int, rng: random.Random, ops_per_key: int = 0) -> None:
        self.keys = keys
        self.rng = rng
        self.keyspace = KeySpace(self.key_prefix or f"{self.name}-", keys, rng, ops_per_key,
                                 self.revisit)
        self.written_keys: set[str] = set()
        self._counter = 0

    @classmethod
    def accepts(cls, ops: frozenset[str]) -> bool:
        """Whether a client performing `ops` can run this workload."""
        return cls.needs <= ops

    def unique(self) -> int:
        self._counter += 1
        return self._counter

    @abstractmethod
    def next_op(self) -> Request:
        """The next operation of the main phase."""

    @abstractmethod
    async def perform(self, client: Client, op: Request) -> Completion:
        """Do `op` against the store; raise OpFailed / OpUnknown unless it is ok."""

    def all_keys(self) -> list[str]:
        return self.keyspace.all()

    def final_ops(self) -> list[Request]:
        """One read of every key, after heal and quiesce."""
        return [Request("read", key) for key in self.all_keys()]

    async def execute(self, client: Client, op: Request) -> Completion:
        """Perform `op` and classify the outcome; a read that did not answer is always `fail`."""
        if op.f not in self.read_fs and op.key is not None:
            self.written_keys.add(op.key)
        try:
            return await self.perform(client, op)
        except OpFailed as e:
            return Completion("fail", None, {"error": str(e), **recorded_extra(e)})
        except OpUnknown as e:
            kind = "fail" if op.f in self.read_fs else "info"
            return Completion(kind, None, {"error": str(e), **recorded_extra(e)})


_EXTRA_ATTR = "history_extra"


def attach_extra(e: BaseException, extra: dict[str, Any]) -> None:
    """Have `execute` record `extra` with the fail/info completion `e` leads to, so what a
    read-modify-write read is in the history whether or not its write succeeded."""
    setattr(e, _EXTRA_ATTR, {**recorded_extra(e), **extra})


def recorded_extra(e: BaseException) -> dict[str, Any]:
    extra = getattr(e, _EXTRA_ATTR, None)
    return extra if isinstance(extra, dict) else {}


def read_extra(reply: Reply) -> dict[str, Any]:
    return {"clock": reply.clock, "context": reply.context, "siblings": len(reply.values)}


def write_extra(reply: Reply, read: Reply) -> dict[str, Any]:
    # read_clock: what the write was based on, so checkers can judge causality, not just values
    return {"clock": reply.clock, "context": reply.context, "read_clock": read.clock}


_PLAIN = frozenset({str, int, float, bool})
_STR = frozenset({str})


def union(values: Iterable[Any]) -> set[Any]:
    """Merge siblings that each hold a list of elements (a non-list value counts as one)."""
    out: set[Any] = set()
    for value in values:
        if isinstance(value, list):
            if _PLAIN.issuperset(map(type, value)):  # the common case, without a call each
                out.update(value)
            else:
                out.update(_hashable(v) for v in value)
        elif value is not None:
            out.add(_hashable(value))
    return out


def _hashable(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) else repr(v)


async def read_then(
    client: Client, key: str, then: Callable[[Reply], Awaitable[Completion]]
) -> Completion:
    """Read-modify-write: any trouble during the read means nothing was written, so `fail`."""
    try:
        current = await client.get(key)
    except (OpFailed, OpUnknown) as e:
        raise OpFailed(f"read before write: {e}") from e
    return await then(current)


def sorted_union(values: Iterable[Any]) -> list[Any]:
    merged = union(values)
    if set(map(type, merged)) <= _STR:  # one type: the key's first part is moot
        return sorted(merged)
    return sorted(merged, key=lambda v: (str(type(v)), v))
