"""Seeded defects (issue 8), chosen with `bugs = [...]` in the cluster file or `--bug NAME`.

Each is a realistic mistake that is off unless named; docs/bugs.md says what each breaks and which
harness test catches it. The switches live where each mechanism does (coordinator, replica,
handoff, anti-entropy, reaper); the defects that need code of their own are here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator

from node.clocks import Version
from node.storage import Storage

KNOWN_BUGS: dict[str, str] = {
    "lww": "concurrent versions are resolved by timestamp (last write wins), not kept as "
           "siblings",
    "blind-overwrite": "a write's causal past is the coordinator's whole local clock, not the "
                       "client's context, so it supersedes siblings the client never saw",
    "ack-before-write": "writes are acknowledged from memory and written to disk about a second "
                        "later; kill -9 loses them",
    "no-handoff": "hints are stored but never delivered",
    "read-repair-clobbers": "read repair overwrites replicas with the coordinator's copy instead "
                            "of the merge",
    "aae-noop": "anti-entropy compares trees but repairs nothing",
    "strict-counts-fallbacks": "strict quorums (sloppy_quorum = false, pr, pw) ask fallbacks and "
                               "count their acknowledgements",
    "stale-read-r1": "reads answer after the first reply even when R > 1",
    "reap-early": "tombstones are reaped after the grace time without checking that every "
                  "primary holds them",
    "preflist-vnodes": "a key's preference list is the owners of the next N ring partitions, "
                       "so a node that owns two of them is named twice and the key is kept on "
                       "fewer than N nodes",
    "reuse-dots": "dot counters are derived per key only, so they start again at 1 after a "
                  "key is reaped and a stale context's past covers (erases) the new write",
}

WRITE_BACK_DELAY_S = 1.0  # ack-before-write: how long an acknowledged write stays in memory


def last_write_wins(versions: Iterable[Version]) -> list[Version]:
    """`lww`: of concurrent versions keep only the newest by timestamp (ties by id)."""
    vs = list(versions)
    if len(vs) <= 1:
        return vs
    return [max(vs, key=lambda v: (v.ts, v.actor, v.counter))]


def _done() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class WriteBackStorage(Storage):
    """`ack-before-write`: puts are answered at once from memory and reach the real storage
    only when the buffer is flushed, `delay` seconds later; a kill -9 in between loses them."""

    def __init__(self, inner: Storage, delay: float = WRITE_BACK_DELAY_S) -> None:
        self.inner = inner
        self.delay = delay
        self._buffer: dict[str, bytes] = {}
        self._timer: asyncio.TimerHandle | None = None

    def get(self, key: str) -> bytes | None:
        blob = self._buffer.get(key)
        return blob if blob is not None else self.inner.get(key)

    def put(self, key: str, blob: bytes) -> Awaitable[None]:
        self._buffer[key] = blob
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush)
        return _done()

    def _flush(self) -> None:
        self._timer = None
        buffered, self._buffer = self._buffer, {}
        for key, blob in buffered.items():
            self.inner.put(key, blob)

    def delete(self, key: str) -> Awaitable[None]:
        self._buffer.pop(key, None)
        return self.inner.delete(key)

    def wait_durable(self, key: str) -> Awaitable[None]:
        return _done()

    def keys(self) -> Iterator[str]:
        return iter(sorted(set(self.inner.keys()) | set(self._buffer)))

    def hint_get(self, owner: str, key: str) -> bytes | None:
        return self.inner.hint_get(owner, key)

    def hint_put(self, owner: str, key: str, blob: bytes) -> Awaitable[None]:
        return self.inner.hint_put(owner, key, blob)

    def hint_delete(self, owner: str, key: str) -> Awaitable[None]:
        return self.inner.hint_delete(owner, key)

    def hint_keys(self, owner: str | None = None, after: str = "",
                  limit: int = 0) -> list[tuple[str, str]]:
        return self.inner.hint_keys(owner, after, limit)

    def meta_get(self, name: str) -> str | None:
        return self.inner.meta_get(name)

    def meta_put(self, name: str, value: str) -> None:
        self.inner.meta_put(name, value)

    async def close(self) -> None:
        # an orderly stop writes the buffer out; only a crash loses it
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        await self.inner.close()
