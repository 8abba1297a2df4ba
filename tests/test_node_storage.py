"""SQLite storage: group commit, read-your-own-pending-writes, persistence across reopen."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from node.storage import MemoryStorage, SqliteStorage

LOG = logging.getLogger("test")


@pytest.mark.parametrize("fsync", ["always", "os", "none"])
def test_writes_are_visible_at_once_and_persist(tmp_path: Path, fsync: str) -> None:
    async def write() -> None:
        st = SqliteStorage(tmp_path / "s.db", fsync, LOG)
        futs = [st.put(f"k{i}", f"v{i}".encode()) for i in range(500)]
        assert st.get("k7") == b"v7"  # before it is durable
        await asyncio.gather(*futs)
        st.put("k7", b"newer")
        await st.wait_durable("k7")
        st.meta_put("incarnation", "abc")
        await st.close()

    async def read() -> None:
        st = SqliteStorage(tmp_path / "s.db", fsync, LOG)
        assert st.get("k7") == b"newer"
        assert st.get("k499") == b"v499"
        assert st.get("missing") is None
        assert len(list(st.keys())) == 500
        assert st.meta_get("incarnation") == "abc"
        await st.close()

    asyncio.run(write())
    asyncio.run(read())


def test_group_commit_batches_many_writes(tmp_path: Path) -> None:
    async def main() -> float:
        st = SqliteStorage(tmp_path / "s.db", "always", LOG)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.gather(*(st.put(f"k{i}", b"x" * 1000) for i in range(2000)))
        elapsed = loop.time() - t0
        await st.close()
        return elapsed

    # 2,000 fsynced writes one by one would take seconds; batched they share a few commits
    assert asyncio.run(main()) < 2.0


def test_memory_storage_has_the_same_contract() -> None:
    async def main() -> None:
        st = MemoryStorage()
        await st.put("a", b"1")
        assert st.get("a") == b"1" and list(st.keys()) == ["a"]
        await st.wait_durable("a")

    asyncio.run(main())
