"""faultfs on its own: real FUSE mounts in temporary directories, power cuts, and the durable
state each one must leave (the model in harness/faultfs/tracker.py).

Needs /dev/fuse, libfuse3 (Debian's fuse3) and mfusepy: skipped otherwise, saying which is
missing, except under CI=true where that fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_platform_support import skip_or_fail

from harness.faultfs.mount import FaultMount, mounted, unavailable
from harness.faultfs.tracker import ATTIC, blocks_touched


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FaultMount]:
    why = unavailable()
    if why:
        skip_or_fail(f"faultfs cannot mount here: {why}")
    mount = FaultMount(tmp_path / "mnt", tmp_path / "disk", Path(f"/tmp/ffs-test-{os.getpid()}-"
                                                                  f"{time.monotonic_ns()}.sock"),
                       log=tmp_path / "faultfs.log")
    mount.start()
    try:
        yield mount
    finally:
        mount.stop()
    assert not mounted(mount.mountpoint)


def put(path: Path, data: bytes, *, sync: bool = False, append: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_file(fs: FaultMount, name: str, data: bytes) -> Path:
    path = fs.mountpoint / name
    put(path, data, sync=True)
    fsync(path.parent)
    return path


def test_unsynced_write_is_lost(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"")
    put(path, b"not synced")
    assert path.read_bytes() == b"not synced"
    report = fs.cut()
    assert path.read_bytes() == b""
    assert report["files_reverted"] == 1


def test_fsynced_write_is_kept(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"synced")
    fs.cut()
    assert path.read_bytes() == b"synced"


def test_fdatasync_counts(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"")
    fd = os.open(path, os.O_WRONLY)
    os.write(fd, b"data")
    os.fdatasync(fd)
    os.close(fd)
    fs.cut()
    assert path.read_bytes() == b"data"


def test_o_dsync_writes_are_durable(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"")
    fd = os.open(path, os.O_WRONLY | os.O_DSYNC)
    os.write(fd, b"at once")
    os.close(fd)
    fs.cut()
    assert path.read_bytes() == b"at once"


def test_new_file_needs_its_directory_fsynced(fs: FaultMount) -> None:
    path = fs.mountpoint / "new"
    put(path, b"data", sync=True)  # the file, not its directory
    fs.cut()
    assert not path.exists()
    put(path, b"data", sync=True)
    fsync(fs.mountpoint)
    fs.cut()
    assert path.read_bytes() == b"data"


def test_directory_fsync_without_file_fsync_keeps_an_empty_file(fs: FaultMount) -> None:
    path = fs.mountpoint / "f"
    put(path, b"data")
    fsync(fs.mountpoint)
    fs.cut()
    assert path.read_bytes() == b""


def test_rename_needs_the_directory_fsynced(fs: FaultMount) -> None:
    a = durable_file(fs, "a", b"A")
    b = fs.mountpoint / "b"
    os.rename(a, b)
    fs.cut()
    assert a.read_bytes() == b"A" and not b.exists()
    os.rename(a, b)
    fsync(fs.mountpoint)
    fs.cut()
    assert b.read_bytes() == b"A" and not a.exists()


def test_rename_between_directories(fs: FaultMount) -> None:
    (fs.mountpoint / "d1").mkdir()
    (fs.mountpoint / "d2").mkdir()
    fsync(fs.mountpoint)
    src = durable_file(fs, "d1/f", b"F")
    os.rename(src, fs.mountpoint / "d2" / "f")
    fsync(fs.mountpoint / "d2")  # the new name is durable, the old one's removal is not
    fs.cut()
    assert (fs.mountpoint / "d1" / "f").read_bytes() == b"F"
    assert (fs.mountpoint / "d2" / "f").read_bytes() == b"F"
    assert os.stat(fs.mountpoint / "d1" / "f").st_ino == os.stat(fs.mountpoint / "d2" / "f").st_ino


def test_replacing_rename_flushes_the_new_data(fs: FaultMount) -> None:
    """ext4 data=ordered with auto_da_alloc: write temp, rename over, fsync the directory."""
    target = durable_file(fs, "config", b"old")
    tmp = fs.mountpoint / "config.tmp"
    put(tmp, b"new")  # no fsync of the file
    os.rename(tmp, target)
    fs.cut()  # the rename was not made durable: the old file
    assert target.read_bytes() == b"old" and not tmp.exists()
    put(tmp, b"new")
    os.rename(tmp, target)
    fsync(fs.mountpoint)
    fs.cut()
    assert target.read_bytes() == b"new" and not tmp.exists()


def test_unlink_comes_back_unless_the_directory_was_fsynced(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"keep me")
    put(path, b" and not this", append=True)
    path.unlink()
    assert not path.exists()
    fs.cut()
    assert path.read_bytes() == b"keep me"
    path.unlink()
    fsync(fs.mountpoint)
    fs.cut()
    assert not path.exists()
    assert os.listdir(fs.backing / ATTIC) == []


def test_new_directory_needs_its_parent_fsynced(fs: FaultMount) -> None:
    d = fs.mountpoint / "d"
    d.mkdir()
    put(d / "f", b"x", sync=True)
    fsync(d)
    fs.cut()
    assert not d.exists()
    d.mkdir()
    fsync(fs.mountpoint)
    put(d / "f", b"x", sync=True)
    fsync(d)
    fs.cut()
    assert (d / "f").read_bytes() == b"x"


def test_rmdir_comes_back(fs: FaultMount) -> None:
    d = fs.mountpoint / "d"
    d.mkdir()
    fsync(fs.mountpoint)
    durable_file(fs, "d/f", b"x")
    (d / "f").unlink()
    d.rmdir()
    fs.cut()
    assert (d / "f").read_bytes() == b"x"


def test_links_are_directory_entries(fs: FaultMount) -> None:
    target = durable_file(fs, "f", b"x")
    os.symlink("f", fs.mountpoint / "sym")
    os.link(target, fs.mountpoint / "hard")
    assert (fs.mountpoint / "sym").read_bytes() == b"x"
    assert os.stat(fs.mountpoint / "hard").st_nlink == 2
    fs.cut()
    assert sorted(os.listdir(fs.mountpoint)) == ["f"]
    os.symlink("f", fs.mountpoint / "sym")
    os.link(target, fs.mountpoint / "hard")
    fsync(fs.mountpoint)
    fs.cut()
    assert os.readlink(fs.mountpoint / "sym") == "f"
    assert (fs.mountpoint / "hard").read_bytes() == b"x"


def test_truncate(fs: FaultMount) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes: three blocks
    path = durable_file(fs, "f", data)
    os.truncate(path, 100)
    fs.cut()
    assert path.read_bytes() == data
    os.truncate(path, 100)
    put(path, b"tail", append=True)
    fsync(path)
    fs.cut()
    assert path.read_bytes() == data[:100] + b"tail"
    put(path, b"")  # O_TRUNC, not synced
    fs.cut()
    assert path.read_bytes() == data[:100] + b"tail"


def test_partial_append(fs: FaultMount) -> None:
    path = durable_file(fs, "log", b"abc")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"def")
    os.fsync(fd)
    os.write(fd, b"ghi")
    os.close(fd)
    assert path.read_bytes() == b"abcdefghi"
    fs.cut()
    assert path.read_bytes() == b"abcdef"


def test_overwrite_in_the_middle_of_a_large_file(fs: FaultMount) -> None:
    data = os.urandom(100_000)
    path = durable_file(fs, "big", data)
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, b"X" * 5000, 30_000)
    os.pwrite(fd, b"Y" * 10, 200_000)  # extends, leaving a hole
    os.close(fd)
    fs.cut()
    assert path.read_bytes() == data


def test_multiple_files(fs: FaultMount) -> None:
    names = [f"f{i}" for i in range(6)]
    for name in names:
        durable_file(fs, name, b"v1-" + name.encode())
    for i, name in enumerate(names):
        put(fs.mountpoint / name, b"v2-" + name.encode(), sync=i % 2 == 0)
    fs.cut()
    for i, name in enumerate(names):
        version = b"v2-" if i % 2 == 0 else b"v1-"
        assert (fs.mountpoint / name).read_bytes() == version + name.encode()


def test_open_descriptor_goes_stale_at_the_cut(fs: FaultMount) -> None:
    path = durable_file(fs, "f", b"x")
    fd = os.open(path, os.O_RDWR)
    try:
        fs.cut()
        with pytest.raises(OSError) as e:
            os.write(fd, b"after the power went off")
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x"


def test_attic_is_hidden(fs: FaultMount) -> None:
    assert ATTIC not in os.listdir(fs.mountpoint)
    with pytest.raises(FileNotFoundError):
        os.stat(fs.mountpoint / ATTIC)


@pytest.mark.parametrize(("synchronous", "kept"), [("FULL", True), ("OFF", False)])
def test_sqlite_wal_through_faultfs(fs: FaultMount, synchronous: str, kept: bool) -> None:
    """SQLite in WAL mode: synchronous=FULL survives the cut, OFF loses the commits."""
    db = fs.mountpoint / "data" / "store.sqlite3"
    db.parent.mkdir()
    fsync(fs.mountpoint)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
    for i in range(50):
        conn.execute("INSERT INTO kv VALUES (?, ?)", (i, f"value {i}"))
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    for i in range(50, 80):
        conn.execute("INSERT INTO kv VALUES (?, ?)", (i, f"value {i}"))
    # the process dies (its descriptors go stale), then the power goes
    fs.cut()
    with contextlib.suppress(sqlite3.Error):
        conn.close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        rows = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
    except sqlite3.OperationalError:
        rows = 0  # the table itself was lost
    finally:
        conn.close()
    assert (rows == 80) if kept else (rows < 80)


def test_blocks_touched() -> None:
    assert list(blocks_touched(0, 0)) == []
    assert list(blocks_touched(0, 1)) == [0]
    assert list(blocks_touched(4095, 2)) == [0, 1]
    assert list(blocks_touched(8192, 4096)) == [2]


# -- random sequences against a model of the durable state ------------------------------------

NAMES = ("a", "b", "c")
OPS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, 9000),
              st.binary(min_size=1, max_size=5000)),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 12000)),
    st.tuples(st.just("fsync"), st.sampled_from(NAMES)),
    st.tuples(st.just("fsyncdir")),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("cut")),
)


class Model:
    """The durable-state model, by inode: names -> inode, inode -> bytes, live and durable."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.data: dict[int, bytes] = {}
        self.durable_names: dict[str, int] = {}
        self.durable_data: dict[int, bytes] = {}
        self.next = 1

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "write":
            _, name, offset, data = op
            if name not in self.names:
                self.names[name] = self.next
                self.data[self.next] = self.durable_data[self.next] = b""
                self.next += 1
            old = self.data[self.names[name]]
            old = old + b"\0" * max(0, offset - len(old))
            self.data[self.names[name]] = old[:offset] + data + old[offset + len(data):]
        elif kind == "truncate" and op[1] in self.names:
            ino = self.names[op[1]]
            old = self.data[ino]
            self.data[ino] = old[:op[2]] + b"\0" * max(0, op[2] - len(old))
        elif kind == "fsync" and op[1] in self.names:
            ino = self.names[op[1]]
            self.durable_data[ino] = self.data[ino]
        elif kind == "fsyncdir":
            self.durable_names = dict(self.names)
        elif kind == "unlink":
            self.names.pop(op[1], None)
        elif kind == "rename" and op[1] in self.names and op[1] != op[2]:
            src = self.names[op[1]]
            if op[2] in self.names and self.names[op[2]] != src:
                self.durable_data[src] = self.data[src]  # auto_da_alloc
            if self.names.get(op[2]) == src:
                return
            self.names[op[2]] = self.names.pop(op[1])
        elif kind == "cut":
            self.names = dict(self.durable_names)
            self.data = {ino: self.durable_data[ino] for ino in self.names.values()}

    def files(self) -> dict[str, bytes]:
        return {name: self.data[ino] for name, ino in self.names.items()}


def _do(fs: FaultMount, op: tuple) -> None:
    kind, root = op[0], fs.mountpoint
    if kind == "write":
        fd = os.open(root / op[1], os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, op[3], op[2])
        finally:
            os.close(fd)
    elif kind == "truncate":
        with contextlib.suppress(FileNotFoundError):
            os.truncate(root / op[1], op[2])
    elif kind == "fsync":
        with contextlib.suppress(FileNotFoundError):
            fsync(root / op[1])
    elif kind == "fsyncdir":
        fsync(root)
    elif kind == "unlink":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / op[1])
    elif kind == "rename":
        with contextlib.suppress(FileNotFoundError):
            os.rename(root / op[1], root / op[2])
    elif kind == "cut":
        fs.cut()


def _files(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in os.listdir(root)}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=25))
def test_random_operations_match_the_model(fs: FaultMount, ops: list[tuple]) -> None:
    for name in os.listdir(fs.mountpoint):  # a clean, durable start for each example
        os.unlink(fs.mountpoint / name)
    fsync(fs.mountpoint)
    fs.cut()
    model = Model()
    for op in [*ops, ("cut",)]:
        _do(fs, op)
        model.apply(op)
        assert _files(fs.mountpoint) == model.files(), op
