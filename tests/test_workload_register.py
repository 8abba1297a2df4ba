"""The register workload records what each write's and delete's read returned (`read`), on ok,
info and fail completions alike, so sibling preservation can judge supersession from the history."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from checkers.history import pair, read_jsonl
from checkers.preservation import check_preservation
from harness.client import OpFailed, OpUnknown, Reply
from harness.history import History
from harness.workloads.base import Completion, Request
from harness.workloads.register import RegisterWorkload


class FakeClient:
    """Answers reads with `values`; the write part ends as `outcome` says."""

    node = "n1"

    def __init__(self, values: list[Any], outcome: str = "ok", read_ok: bool = True) -> None:
        self.values, self.outcome, self.read_ok = values, outcome, read_ok

    async def get(self, key: str) -> Reply:
        if not self.read_ok:
            raise OpUnknown("read timed out")
        return Reply(list(self.values), "ctx", {"n1": 1})

    async def _answer(self) -> Reply:
        if self.outcome == "info":
            raise OpUnknown("timed out")
        if self.outcome == "fail":
            raise OpFailed("quorum_failed, written 0")
        return Reply([], "ctx2", {"n1": 2})

    async def put(self, key: str, value: Any, context: str | None) -> Reply:
        return await self._answer()

    async def delete(self, key: str, context: str | None) -> Reply:
        return await self._answer()


def execute(op: Request, client: FakeClient) -> Completion:
    w = RegisterWorkload(keys=2, rng=random.Random(1))
    return asyncio.run(w.execute(client, op))  # type: ignore[arg-type]


@pytest.mark.parametrize("outcome", ["ok", "info", "fail"])
@pytest.mark.parametrize("f", ["write", "delete"])
def test_read_is_recorded_on_every_outcome(f: str, outcome: str) -> None:
    op = Request(f, "r0", 7 if f == "write" else None)
    done = execute(op, FakeClient([3, 1], outcome))
    assert done.type == outcome
    assert done.extra["read"] == [1, 3]
    if outcome == "ok":
        assert done.extra["read_clock"] == {"n1": 1}  # unchanged: still recorded on ok
    else:
        assert done.extra["error"]


def test_a_delete_with_nothing_to_delete_records_its_empty_read() -> None:
    done = execute(Request("delete", "r0"), FakeClient([]))
    assert done.type == "fail" and done.extra["read"] == []


def test_a_blind_write_records_an_empty_read() -> None:
    done = execute(Request("write", "r0", 7), FakeClient([]))
    assert done.type == "ok" and done.extra["read"] == []


def test_a_failed_read_records_no_read() -> None:
    # nothing was read, so there is nothing to record (the write is `fail`: it did not happen)
    done = execute(Request("write", "r0", 7), FakeClient([1], read_ok=False))
    assert done.type == "fail" and "read" not in done.extra


def test_recorded_reads_reach_the_checker(tmp_path: Path) -> None:
    """workload -> history.jsonl -> checker: an info write based on 1 excuses 1's absence."""
    path = tmp_path / "history.jsonl"
    writer = History(path)
    steps = [(0, Request("write", "r0", 1), FakeClient([])),
             (1, Request("write", "r0", 2), FakeClient([1], "info"))]
    for process, op, client in steps:
        common = {"process": process, "f": op.f, "key": op.key}
        writer.append(type="invoke", value=op.value, **common)
        done = execute(op, client)
        writer.append(type=done.type, value=done.value, **done.extra, **common)
    writer.append(type="invoke", value=None, process=9, f="read", key="r0", final=True)
    writer.append(type="ok", value=[], process=9, f="read", key="r0", final=True)
    writer.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[3]["type"] == "info" and lines[3]["read"] == [1]
    v = check_preservation(pair(read_jsonl(path))[0])
    assert v.verdict == "valid", v.summary


class ContextClient(FakeClient):
    """Remembers the context each write was sent with."""

    def __init__(self, values: list[Any], outcome: str = "ok", context: str = "ctx") -> None:
        super().__init__(values, outcome)
        self.context = context
        self.sent: list[str | None] = []

    async def get(self, key: str) -> Reply:
        return Reply(list(self.values), self.context, {"n1": 1})

    async def put(self, key: str, value: Any, context: str | None) -> Reply:
        self.sent.append(context)
        return await self._answer()


@pytest.mark.parametrize("outcome", ["ok", "info"])
def test_a_stale_write_uses_an_earlier_read_and_says_so(outcome: str) -> None:
    w = RegisterWorkload(keys=1, rng=random.Random(3))
    old = ContextClient([5], context="old")
    asyncio.run(w.execute(old, Request("read", "r0")))  # held: the key's context as it was then
    now = ContextClient([6, 7], outcome, context="fresh")
    stale = None
    for _ in range(200):  # some writes of the only key use the held read (STALE_P)
        op = w.next_op()
        if op.f == "write" and op.value in w.stale:
            stale = op
            break
    assert stale is not None
    done = asyncio.run(w.execute(now, stale))  # type: ignore[arg-type]
    assert done.type == outcome
    assert now.sent == ["old"]  # the held read's context, not a fresh read's
    assert done.extra["read"] == [5] and done.extra["stale"] is True


def test_stale_writes_use_the_oldest_held_reads_first_and_up_to_three() -> None:
    w = RegisterWorkload(keys=1, rng=random.Random(3), ops_per_key=0)
    for i in range(5):  # five reads of the key: the first three are held, oldest first
        asyncio.run(w.execute(FakeClient([i]), Request("read", "r0")))  # type: ignore[arg-type]
    assert [r.values for r in w.held["r0"]] == [[0], [1], [2]]
    stale = []
    for _ in range(400):
        op = w.next_op()
        if op.f == "write" and op.value in w.stale:
            stale.append(w.stale.pop(op.value).values)
    assert stale == [[0], [1], [2]] and w.held["r0"] == []  # each held read is used once
