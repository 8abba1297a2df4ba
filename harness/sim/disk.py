"""In-memory storage that remembers what is durable: a crash loses exactly what the fsync policy
had not yet made durable.

Three layers, as SQLite in WAL mode on a real disk: a write first lives in the process (lost by
kill -9), a commit hands it to the OS (lost by a power cut, kept by kill -9), an fsync puts it on
the disk. Commits are grouped: every write of one turn commits together `COMMIT_S` later, as the
real group commit does. The node's `fsync` policy decides when a write is acknowledged and when it
reaches the disk, as `SqliteStorage`'s pragmas do:

| fsync | acknowledged | on the disk |
|---|---|---|
| always (synchronous=FULL) | after commit + fsync | at commit |
| os (NORMAL) | after commit | at the next checkpoint (every `CHECKPOINT_S`) |
| none (OFF) | at once, before the commit | never (the OS decides; a cut loses it) |

The commit and checkpoint timers run in the node's context, so a paused node stops committing
and a killed one never commits again. Metadata (the incarnation) is written durably at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

from node.storage import Storage, _select_hints

COMMIT_S = 0.0005
CHECKPOINT_S = 0.2
_KV, _HINT = 0, 1
Key = tuple  # (_KV, key) or (_HINT, owner, key)


def _done() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class SimDisk(Storage):
    """One node's disk, kept across its crashes and restarts (`crash`, `power_cut`)."""

    def __init__(self, fsync: str) -> None:
        if fsync not in ("always", "os", "none"):
            raise ValueError(f"unknown fsync policy {fsync!r}")
        self.fsync = fsync
        self._disk: dict[Key, bytes | None] = {}  # survives a power cut
        self._os: dict[Key, bytes | None] = {}  # committed, not synced: survives kill -9
        self._mem: dict[Key, bytes | None] = {}  # not yet committed
        self._waiting: list[asyncio.Future[None]] = []
        self._kv: dict[str, bytes] = {}  # the live view
        self._hints: dict[tuple[str, str], bytes] = {}
        self._meta: dict[str, str] = {}
        self._commit: asyncio.TimerHandle | None = None
        self._checkpoint: asyncio.TimerHandle | None = None

    # -- faults --

    def crash(self) -> dict[str, int]:
        """kill -9: what was not committed is gone; returns what was dropped."""
        dropped = {"uncommitted": len(self._mem)}
        self._mem.clear()
        self._reset_timers()
        self._rebuild()
        return dropped

    def power_cut(self) -> dict[str, int]:
        """The power goes: only what was fsynced stays."""
        dropped = {"uncommitted": len(self._mem), "unsynced": len(self._os)}
        self._mem.clear()
        self._os.clear()
        self._reset_timers()
        self._rebuild()
        return dropped

    def _reset_timers(self) -> None:
        for timer in (self._commit, self._checkpoint):
            if timer is not None:
                timer.cancel()
        self._commit = self._checkpoint = None
        self._waiting = []  # the dead incarnation's acknowledgements never come

    def _rebuild(self) -> None:
        self._kv.clear()
        self._hints.clear()
        for layer in (self._disk, self._os):
            for k, blob in layer.items():
                self._apply_live(k, blob)

    def _apply_live(self, k: Key, blob: bytes | None) -> None:
        table = self._kv if k[0] == _KV else self._hints
        name = k[1] if k[0] == _KV else (k[1], k[2])
        if blob is None:
            table.pop(name, None)  # type: ignore[arg-type]
        else:
            table[name] = blob  # type: ignore[index]

    # -- writes --

    def _write(self, k: Key, blob: bytes | None) -> Awaitable[None]:
        self._apply_live(k, blob)
        self._mem[k] = blob
        loop = asyncio.get_running_loop()
        if self._commit is None:
            self._commit = loop.call_later(COMMIT_S, self._do_commit)
        if self.fsync == "none":
            return _done()
        fut = loop.create_future()
        self._waiting.append(fut)
        return fut

    def _do_commit(self) -> None:
        self._commit = None
        batch, self._mem = self._mem, {}
        if self.fsync == "always":
            self._disk.update(batch)
        else:
            self._os.update(batch)
            if self.fsync == "os" and self._checkpoint is None:
                self._checkpoint = asyncio.get_running_loop().call_later(
                    CHECKPOINT_S, self._do_checkpoint)
        waiting, self._waiting = self._waiting, []
        for fut in waiting:
            if not fut.done():
                fut.set_result(None)

    def _do_checkpoint(self) -> None:
        self._checkpoint = None
        self._disk.update(self._os)
        self._os.clear()

    # -- the Storage interface --

    def get(self, key: str) -> bytes | None:
        return self._kv.get(key)

    def put(self, key: str, blob: bytes) -> Awaitable[None]:
        return self._write((_KV, key), blob)

    def delete(self, key: str) -> Awaitable[None]:
        return self._write((_KV, key), None)

    def hint_get(self, owner: str, key: str) -> bytes | None:
        return self._hints.get((owner, key))

    def hint_put(self, owner: str, key: str, blob: bytes) -> Awaitable[None]:
        return self._write((_HINT, owner, key), blob)

    def hint_delete(self, owner: str, key: str) -> Awaitable[None]:
        return self._write((_HINT, owner, key), None)

    def hint_keys(self, owner: str | None = None, after: str = "",
                  limit: int = 0) -> list[tuple[str, str]]:
        return _select_hints(self._hints, owner, after, limit)

    def wait_durable(self, key: str) -> Awaitable[None]:
        if self.fsync == "none" or (_KV, key) not in self._mem:
            return _done()
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return fut

    def keys(self) -> Iterator[str]:
        return iter(sorted(self._kv))

    def meta_get(self, name: str) -> str | None:
        return self._meta.get(name)

    def meta_put(self, name: str, value: str) -> None:
        self._meta[name] = value

    async def close(self) -> None:
        return None
