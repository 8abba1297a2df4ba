"""Durable key -> sibling-set storage, behind an interface a simulator can swap.

`SqliteStorage` keeps a SQLite database in WAL mode, with a bounded write-through cache in front.
Writes made during one turn of the event loop are handed as one batch to ONE writer thread, which
commits every batch that queued up while the previous commit ran in a single transaction with a
single fsync (group commit; as a few multi-row statements, see `_statements`), then acknowledges
all of them: `fsync = "always"` stays durable
without one fsync per write, and the loop pays one thread hand-off per turn, not per write.
Checkpoints (copying the WAL into the database file) run on a third thread of their own, so a
checkpoint never stalls the commits queued behind it.

Contract for every implementation: `put()` registers the new blob at call time (a `get()` right
after it sees it, even before it is durable) and returns an awaitable that completes once the
write is as durable as the fsync policy promises. So a read-merge-put done without awaiting in
between is atomic per key on one event loop, and needs no lock. `delete()` (tombstone reaping)
follows the same contract.

Hints (sloppy quorum, issue 3) live in a second table, keyed by (owner, key): the sibling set a
fallback holds on behalf of a primary that did not answer. They are durable like the data, go
through the same group commit, and are deleted only after the owner acknowledged them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterable, Iterator
from pathlib import Path

_SYNC_PRAGMA = {"always": "FULL", "os": "NORMAL", "none": "OFF"}
_MAX_BATCH = 4096
_ROWS_PER_STATEMENT = 256  # 512 parameters: far below SQLite's limit
_CACHE_ENTRIES = 100_000
_CHECKPOINT_EVERY_S = 0.2
_SLOW_COMMIT_S = 0.1


class StorageError(RuntimeError):
    """The disk failed a write; the node must not acknowledge it."""


class Storage(ABC):
    """Keys map to opaque blobs (encoded sibling sets); plus hints and a small metadata table."""

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def put(self, key: str, blob: bytes) -> Awaitable[None]: ...

    @abstractmethod
    def delete(self, key: str) -> Awaitable[None]: ...

    @abstractmethod
    def hint_get(self, owner: str, key: str) -> bytes | None: ...

    @abstractmethod
    def hint_put(self, owner: str, key: str, blob: bytes) -> Awaitable[None]: ...

    @abstractmethod
    def hint_delete(self, owner: str, key: str) -> Awaitable[None]: ...

    @abstractmethod
    def hint_keys(self, owner: str | None = None, after: str = "",
                  limit: int = 0) -> list[tuple[str, str]]:
        """(owner, key) of stored hints, sorted; only `owner`'s if given, keys > `after`,
        at most `limit` (0: all)."""

    @abstractmethod
    def wait_durable(self, key: str) -> Awaitable[None]:
        """Completes once every earlier put() of `key` is durable."""

    @abstractmethod
    def keys(self) -> Iterator[str]: ...

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every (key, blob), for rebuilding in-memory indexes at start-up."""
        for key in self.keys():
            blob = self.get(key)
            if blob is not None:
                yield key, blob

    @abstractmethod
    def meta_get(self, name: str) -> str | None: ...

    @abstractmethod
    def meta_put(self, name: str, value: str) -> None:
        """Write metadata durably before returning (rare: start-up only)."""

    @abstractmethod
    async def close(self) -> None: ...


def _done() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class MemoryStorage(Storage):
    """Everything in a dict: for tests and the simulator; nothing survives the process."""

    def __init__(self) -> None:
        self._kv: dict[str, bytes] = {}
        self._hints: dict[tuple[str, str], bytes] = {}
        self._meta: dict[str, str] = {}

    def get(self, key: str) -> bytes | None:
        return self._kv.get(key)

    def put(self, key: str, blob: bytes) -> Awaitable[None]:
        self._kv[key] = blob
        return _done()

    def delete(self, key: str) -> Awaitable[None]:
        self._kv.pop(key, None)
        return _done()

    def hint_get(self, owner: str, key: str) -> bytes | None:
        return self._hints.get((owner, key))

    def hint_put(self, owner: str, key: str, blob: bytes) -> Awaitable[None]:
        self._hints[(owner, key)] = blob
        return _done()

    def hint_delete(self, owner: str, key: str) -> Awaitable[None]:
        self._hints.pop((owner, key), None)
        return _done()

    def hint_keys(self, owner: str | None = None, after: str = "",
                  limit: int = 0) -> list[tuple[str, str]]:
        return _select_hints(self._hints, owner, after, limit)

    def wait_durable(self, key: str) -> Awaitable[None]:
        return _done()

    def keys(self) -> Iterator[str]:
        return iter(sorted(self._kv))

    def meta_get(self, name: str) -> str | None:
        return self._meta.get(name)

    def meta_put(self, name: str, value: str) -> None:
        self._meta[name] = value

    async def close(self) -> None:
        return None


_KV, _HINTS = "kv", "hints"
_HINT_SEP = "\x00"  # node ids never hold it (config allows letters, digits, '-', '_')


def _select_hints(hints: Iterable[tuple[str, str]], owner: str | None, after: str,
                  limit: int) -> list[tuple[str, str]]:
    picked = sorted(h for h in hints if (owner is None or h[0] == owner) and h[1] > after)
    return picked[:limit] if limit > 0 else picked


class SqliteStorage(Storage):
    def __init__(self, path: Path, fsync: str, log: logging.Logger) -> None:
        if fsync not in _SYNC_PRAGMA:
            raise ValueError(f"unknown fsync policy {fsync!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._fsync = fsync
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._reader = self._connect()
        self._reader.executescript(
            "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL);"
            "CREATE TABLE IF NOT EXISTS hints (k TEXT PRIMARY KEY, v BLOB NOT NULL);"
            "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
        )
        # (table, key) -> (sequence number, blob or None for a delete, future) of the newest
        # write not yet committed
        self._pending: dict[tuple[str, str], tuple[int, bytes | None, asyncio.Future[None]]] = {}
        self._seq = 0
        self._cache: dict[str, bytes] = {}
        self._batch: list[tuple[str, str, bytes | None, int, asyncio.Future[None]]] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={_SYNC_PRAGMA[self._fsync]}")
        return conn

    def get(self, key: str) -> bytes | None:
        pending = self._pending.get((_KV, key))
        if pending is not None:
            return pending[1]
        blob = self._cache.get(key)
        if blob is not None:
            return blob
        row = self._reader.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            return None
        self._remember(key, row[0])
        return row[0]

    def _remember(self, key: str, blob: bytes | None) -> None:
        if blob is None:
            self._cache.pop(key, None)
            return
        self._cache[key] = blob
        if len(self._cache) > _CACHE_ENTRIES:
            del self._cache[next(iter(self._cache))]  # oldest inserted first

    def put(self, key: str, blob: bytes) -> Awaitable[None]:
        return self._write(_KV, key, blob)

    def delete(self, key: str) -> Awaitable[None]:
        return self._write(_KV, key, None)

    def hint_get(self, owner: str, key: str) -> bytes | None:
        hkey = owner + _HINT_SEP + key
        pending = self._pending.get((_HINTS, hkey))
        if pending is not None:
            return pending[1]
        row = self._reader.execute("SELECT v FROM hints WHERE k = ?", (hkey,)).fetchone()
        return None if row is None else row[0]

    def hint_put(self, owner: str, key: str, blob: bytes) -> Awaitable[None]:
        return self._write(_HINTS, owner + _HINT_SEP + key, blob)

    def hint_delete(self, owner: str, key: str) -> Awaitable[None]:
        return self._write(_HINTS, owner + _HINT_SEP + key, None)

    def hint_keys(self, owner: str | None = None, after: str = "",
                  limit: int = 0) -> list[tuple[str, str]]:
        if owner is None:
            rows = self._reader.execute("SELECT k FROM hints ORDER BY k")
        else:
            # the range of `owner`'s hints after `after`, in key order
            lo = owner + _HINT_SEP + after
            hi = owner + chr(ord(_HINT_SEP) + 1)
            sql = "SELECT k FROM hints WHERE k > ? AND k < ? ORDER BY k"
            rows = self._reader.execute(sql + (f" LIMIT {int(limit)}" if limit > 0 else ""),
                                        (lo, hi))
        found = {k for (k,) in rows}
        for table, hkey in list(self._pending):
            if table == _HINTS:
                if self._pending[(table, hkey)][1] is None:
                    found.discard(hkey)
                else:
                    found.add(hkey)
        pairs = (tuple(h.split(_HINT_SEP, 1)) for h in found)
        return _select_hints(pairs, owner, after, limit)  # type: ignore[arg-type]

    def _write(self, table: str, key: str, blob: bytes | None) -> Awaitable[None]:
        self._seq += 1
        fut = self._loop.create_future()
        self._pending[(table, key)] = (self._seq, blob, fut)
        if not self._batch:
            self._loop.call_soon(self._flush)
        self._batch.append((table, key, blob, self._seq, fut))
        if self._fsync == "none":
            return _done()  # "none": acknowledged before it reaches the OS
        return fut

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self._queue.put(batch)

    def wait_durable(self, key: str) -> Awaitable[None]:
        pending = self._pending.get((_KV, key))
        if pending is None or self._fsync == "none":
            return _done()
        return asyncio.shield(pending[2])

    def keys(self) -> Iterator[str]:
        committed = {r[0] for r in self._reader.execute("SELECT k FROM kv")}
        for (table, key), (_, blob, _) in list(self._pending.items()):
            if table == _KV:
                if blob is None:
                    committed.discard(key)
                else:
                    committed.add(key)
        return iter(sorted(committed))

    def items(self) -> Iterator[tuple[str, bytes]]:
        # a scan that bypasses the cache: start-up would otherwise flood it
        overlay = {k: b for (t, k), (_, b, _) in list(self._pending.items()) if t == _KV}
        for key, blob in self._reader.execute("SELECT k, v FROM kv").fetchall():
            if key not in overlay:
                yield key, blob
        for key, blob in overlay.items():
            if blob is not None:
                yield key, blob

    def meta_get(self, name: str) -> str | None:
        row = self._reader.execute("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def meta_put(self, name: str, value: str) -> None:
        with self._connect() as conn:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (name, value))
        conn.close()

    async def close(self) -> None:
        self._flush()
        done = self._loop.create_future()
        self._queue.put([("", "", None, -1, done)])  # stop marker, after every queued write
        await done
        self._stopping.set()
        self._writer.join(timeout=5)
        self._checkpointer.join(timeout=5)
        self._reader.close()

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stopping.wait(_CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as e:
                    self._log.warning("storage: checkpoint failed: %s", e)
        finally:
            conn.close()

    def _write_loop(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        try:
            while True:
                batch = list(self._queue.get())
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.extend(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = next((item for item in batch if item[3] < 0), None)
                writes = [item for item in batch if item[3] >= 0]
                error: Exception | None = None
                if writes:
                    started = time.monotonic()
                    statements = _statements(writes)
                    try:
                        if len(statements) == 1:  # atomic alone: its own transaction
                            conn.execute(*statements[0])
                        else:
                            conn.execute("BEGIN")
                            for statement in statements:
                                conn.execute(*statement)
                            conn.execute("COMMIT")
                    except sqlite3.Error as e:
                        error = e
                        with contextlib.suppress(sqlite3.Error):
                            if conn.in_transaction:
                                conn.execute("ROLLBACK")
                    took = time.monotonic() - started
                    if took > _SLOW_COMMIT_S:
                        self._log.warning("storage: commit of %d writes took %.0f ms",
                                          len(writes), took * 1000)
                self._loop.call_soon_threadsafe(self._committed, writes, error)
                if stop is not None:
                    self._loop.call_soon_threadsafe(_resolve, stop[4], None)
                    return
        finally:
            conn.close()

    def _committed(self, writes: list, error: Exception | None) -> None:
        if error is not None:
            self._log.error("storage: commit of %d writes failed: %s", len(writes), error)
        for table, key, _, seq, fut in writes:
            pending = self._pending.get((table, key))
            if pending is not None and pending[0] == seq:
                del self._pending[(table, key)]
                if error is None and table == _KV:
                    self._remember(key, pending[1])
            _resolve(fut, None if error is None else StorageError(str(error)))


def _statements(writes: list) -> list[tuple[str, list]]:
    """A batch as a few multi-row statements (a later write of the same key wins, as in
    `_pending`). The writer thread gives up the GIL around every statement it steps, and
    getting it back from a busy event loop can take the whole switch interval (5 ms): one
    statement per row (executemany) made a commit of 30 writes wait ~30 of those. Row counts
    are padded to a power of two by repeating the last row (harmless: the same row again), so
    that a few statement texts serve every batch size."""
    out: list[tuple[str, list]] = []
    for table in (_KV, _HINTS):
        last: dict[str, bytes | None] = {}
        for t, key, blob, _, _ in writes:
            if t == table:
                last[key] = blob
        puts = [(k, v) for k, v in last.items() if v is not None]
        dels = [(k,) for k, v in last.items() if v is None]
        for i in range(0, len(puts), _ROWS_PER_STATEMENT):
            rows = _padded(puts[i:i + _ROWS_PER_STATEMENT])
            # an upsert rewrites the row where it is; INSERT OR REPLACE deleted it and inserted
            # it under a new rowid, touching three b-tree pages: 3x the WAL and the CPU
            out.append((f"INSERT INTO {table} (k, v) VALUES "
                        + ", ".join(["(?, ?)"] * len(rows))
                        + " ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        [x for row in rows for x in row]))
        for i in range(0, len(dels), _ROWS_PER_STATEMENT):
            rows = _padded(dels[i:i + _ROWS_PER_STATEMENT])
            out.append((f"DELETE FROM {table} WHERE k IN ({', '.join(['?'] * len(rows))})",
                        [row[0] for row in rows]))
    return out


def _padded(rows: list) -> list:
    size = 1 << (len(rows) - 1).bit_length()
    return rows + rows[-1:] * (size - len(rows))


def _resolve(fut: asyncio.Future, error: Exception | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
