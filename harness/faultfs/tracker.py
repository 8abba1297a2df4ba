"""What a power cut would lose: the durability model behind faultfs, on a backing directory.

The backing directory always holds the *live* state (what processes see through the mount); the
tracker keeps, beside it, enough to rebuild the *durable* state (what a disk would hold after the
power went off). A power cut (`power_cut`) rewinds the backing directory to the durable state.

The model (documented in docs/platforms.md, "The power nemesis"): nothing reaches the disk unless
a program asks for it. That is the POSIX promise and the worst case ext4 (data=ordered) shows
when a crash comes before its periodic journal commit (5 s) or writeback (30 s):

* **File data and size** (write, truncate, O_TRUNC) are durable only once the file is fsynced or
  fdatasynced (through any descriptor of the same inode), or written through a descriptor opened
  with O_SYNC / O_DSYNC. fdatasync counts as fsync: the size needed to read the data back is
  part of it, as Linux does.
* **Directory entries** (create, mkdir, mknod, symlink, link, unlink, rmdir, rename) are durable
  only once the directory that holds the entry is fsynced. fsync of a new file does *not* make
  its name durable (fsync(2): "an explicit fsync() on a file descriptor for the directory is
  also needed"); ext4 happens to commit the name with the file's fsync, this model does not. A
  rename between two directories touches both: each side becomes durable with its own
  directory's fsync, so after a cut the file may have both names or neither (POSIX allows it;
  ext4's journal would not).
* **One ext4 data=ordered rule is modelled:** a rename that *replaces* an existing regular file
  makes the renamed file's data durable at the rename (ext4's `auto_da_alloc` flushes it so the
  rename never exposes an empty file), so write-temp + rename + fsync(dir) is safe, as
  applications expect on ext4. The "replace by truncate" heuristic is not modelled.
* **Not modelled:** permissions, owners, times and extended attributes (kept as they are live),
  torn or reordered writes inside a file (a cut keeps exactly the synced bytes, as lazyfs does),
  sync(2)/syncfs(2) (FUSE does not see them), and periodic commits (nothing becomes durable by
  waiting).

How it is kept: file data by inode, as an undo record per file changed since its last fsync (the
size it had then and, for each 4 KiB block overwritten since, the bytes it had then); directory
entries by directory inode, as a snapshot of the names (name -> inode) at its last fsync, taken
just before the first change. Removed files and directories are not deleted but moved to the
attic (`.faultfs-attic` in the backing directory, hidden from the mount), so that a cut can bring
them back by hard link (files) or rename (directories); the attic is emptied of what no snapshot
needs at each directory fsync and at each cut. Everything is kept in this process's memory: if
the faultfs process dies, the backing directory is left as live state.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 4096
ATTIC = ".faultfs-attic"


@dataclass
class Undo:
    """How to bring one file back to its last synced content."""

    size: int  # the size at the last sync
    blocks: dict[int, bytes] = field(default_factory=dict)  # block -> its bytes then

    def saved_bytes(self) -> int:
        return sum(len(b) for b in self.blocks.values())


Entry = tuple[int, str]  # (inode, kind: "dir" | "file" | "link" | "other")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def blocks_touched(offset: int, length: int) -> range:
    """The block numbers a change of `length` bytes at `offset` touches (pure)."""
    if length <= 0:
        return range(0)
    return range(offset // BLOCK, (offset + length - 1) // BLOCK + 1)


class Tracker:
    """The backing directory and its durable state. Every method takes paths relative to the
    backing root ("" is the root) and holds one lock, so a cut never sees half an operation."""

    def __init__(self, backing: Path, sync_backing: bool = False) -> None:
        self.root = backing.resolve()
        self.attic = self.root / ATTIC
        self.attic.mkdir(exist_ok=True)
        for leftover in self.attic.iterdir():  # a previous faultfs died: live state it is
            _remove(leftover)
        self.sync_backing = sync_backing
        self.lock = threading.RLock()
        self.undo: dict[int, Undo] = {}
        self.snapshots: dict[int, dict[str, Entry]] = {}
        self.cuts = 0

    # -- paths --------------------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        rel = rel.strip("/")
        if rel == ATTIC or rel.startswith(ATTIC + "/"):
            raise OSError(errno.ENOENT, "no such file", rel)
        return self.root / rel if rel else self.root

    def hidden(self, rel: str) -> bool:
        rel = rel.strip("/")
        return rel == ATTIC or rel.startswith(ATTIC + "/")

    def _listing(self, directory: Path) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        with os.scandir(directory) as it:
            for e in it:
                if directory == self.root and e.name == ATTIC:
                    continue
                st = e.stat(follow_symlinks=False)  # st_ino: d_ino may differ (overlayfs)
                out[e.name] = (st.st_ino, _kind(st.st_mode))
        return out

    # -- bookkeeping before a change ----------------------------------------------------------

    def _dir_changing(self, directory: Path) -> None:
        """Snapshot the directory's names before the first change since its last fsync."""
        ino = os.lstat(directory).st_ino
        if ino not in self.snapshots:
            self.snapshots[ino] = self._listing(directory)

    def _data_changing(self, fd: int, offset: int, length: int) -> None:
        """Save the synced bytes of the blocks a change of [offset, offset+length) touches."""
        st = os.fstat(fd)
        undo = self.undo.get(st.st_ino)
        if undo is None:
            undo = self.undo[st.st_ino] = Undo(st.st_size)
        end = min(offset + length, undo.size)
        for block in blocks_touched(offset, end - offset):
            if block not in undo.blocks:
                undo.blocks[block] = os.pread(fd, BLOCK, block * BLOCK)

    def _to_attic(self, path: Path, st: os.stat_result) -> None:
        """Keep a removed entry's inode reachable (files by a hard link, directories moved)."""
        dest = self.attic / str(st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            os.rename(path, dest)
        elif os.path.lexists(dest):
            os.unlink(path)
        else:
            os.rename(path, dest)

    def _keep_in_attic(self, path: Path, st: os.stat_result) -> None:
        """A hard link in the attic to a file about to be replaced (it keeps its name now)."""
        dest = self.attic / str(st.st_ino)
        if not os.path.lexists(dest):
            os.link(path, dest, follow_symlinks=False)

    # -- operations ---------------------------------------------------------------------------

    def open(self, rel: str, flags: int, mode: int = 0o644) -> int:
        """Open (creating if O_CREAT) a file; O_TRUNC goes through the model. Returns an fd."""
        path = self.path(rel)
        with self.lock:
            creating = bool(flags & os.O_CREAT) and not os.path.lexists(path)
            if creating:
                self._dir_changing(path.parent)
            backing_flags = flags & ~(os.O_TRUNC | os.O_APPEND)
            if flags & os.O_ACCMODE == os.O_WRONLY:  # saving old blocks reads them
                backing_flags = (backing_flags & ~os.O_ACCMODE) | os.O_RDWR
            fd = os.open(path, backing_flags, mode)
            try:
                if creating:
                    ino = os.fstat(fd).st_ino
                    self.undo[ino] = Undo(0)  # a new inode: nothing of it is durable
                    self.snapshots.pop(ino, None)
                elif flags & os.O_TRUNC and (flags & os.O_ACCMODE) != os.O_RDONLY:
                    self._truncate_fd(fd, 0)
            except BaseException:
                os.close(fd)
                raise
            return fd

    def write(self, fd: int, data: bytes, offset: int, sync: bool = False) -> int:
        with self.lock:
            self._data_changing(fd, offset, len(data))
            n = os.pwrite(fd, data, offset)
            if sync:
                self.undo.pop(os.fstat(fd).st_ino, None)
            return n

    def truncate(self, rel: str, length: int, fd: int | None = None) -> None:
        with self.lock:
            if fd is not None:
                self._truncate_fd(fd, length)
                return
            fd = os.open(self.path(rel), os.O_RDWR)
            try:
                self._truncate_fd(fd, length)
            finally:
                os.close(fd)

    def _truncate_fd(self, fd: int, length: int) -> None:
        size = os.fstat(fd).st_size
        if length < size:
            self._data_changing(fd, length, size - length)
        os.ftruncate(fd, length)

    def fsync(self, fd: int) -> None:
        """The file's data and size become durable (fsync and fdatasync alike)."""
        with self.lock:
            self.undo.pop(os.fstat(fd).st_ino, None)
        if self.sync_backing:
            os.fsync(fd)

    def fsyncdir(self, rel: str | None, ino: int | None = None) -> None:
        """The directory's entries become durable."""
        with self.lock:
            if ino is None:
                ino = os.lstat(self.path(rel or "")).st_ino
            if self.snapshots.pop(ino, None) is not None:
                self._collect_attic()

    def mkdir(self, rel: str, mode: int) -> None:
        path = self.path(rel)
        with self.lock:
            self._dir_changing(path.parent)
            os.mkdir(path, mode)
            self.snapshots.pop(os.lstat(path).st_ino, None)

    def mknod(self, rel: str, mode: int, dev: int) -> None:
        path = self.path(rel)
        with self.lock:
            self._dir_changing(path.parent)
            os.mknod(path, mode, dev)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                self.undo[st.st_ino] = Undo(0)

    def symlink(self, rel: str, target: str) -> None:
        path = self.path(rel)
        with self.lock:
            self._dir_changing(path.parent)
            os.symlink(target, path)

    def link(self, rel: str, existing: str) -> None:
        path, source = self.path(rel), self.path(existing)
        with self.lock:
            self._dir_changing(path.parent)
            os.link(source, path, follow_symlinks=False)

    def unlink(self, rel: str) -> None:
        path = self.path(rel)
        with self.lock:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "is a directory", rel)
            self._dir_changing(path.parent)
            self._to_attic(path, st)

    def rmdir(self, rel: str) -> None:
        path = self.path(rel)
        with self.lock:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "not a directory", rel)
            if path == self.root:
                raise OSError(errno.EBUSY, "the mount's root", rel)
            if any(os.scandir(path)):
                raise OSError(errno.ENOTEMPTY, "directory not empty", rel)
            self._dir_changing(path.parent)
            self._to_attic(path, st)

    def rename(self, old: str, new: str, noreplace: bool = False) -> None:
        src, dst = self.path(old), self.path(new)
        with self.lock:
            s = os.lstat(src)
            try:
                d: os.stat_result | None = os.lstat(dst)
            except FileNotFoundError:
                d = None
            if d is not None and noreplace:
                raise OSError(errno.EEXIST, "exists", new)
            if d is not None and d.st_ino == s.st_ino:
                return  # two names of one inode: rename does nothing
            if d is not None:
                if stat.S_ISDIR(s.st_mode) != stat.S_ISDIR(d.st_mode):
                    raise OSError(errno.EISDIR if stat.S_ISDIR(d.st_mode) else errno.ENOTDIR,
                                  "type mismatch", new)
                if stat.S_ISDIR(d.st_mode) and any(os.scandir(dst)):
                    raise OSError(errno.ENOTEMPTY, "directory not empty", new)
            self._dir_changing(src.parent)
            self._dir_changing(dst.parent)
            if d is not None and stat.S_ISDIR(d.st_mode):
                self._to_attic(dst, d)
            elif d is not None:
                self._keep_in_attic(dst, d)
                if stat.S_ISREG(s.st_mode) and stat.S_ISREG(d.st_mode):
                    self.undo.pop(s.st_ino, None)  # ext4 auto_da_alloc: replace-via-rename
            os.rename(src, dst)

    def released(self, fd: int) -> None:
        """A descriptor is closed: forget an inode that no name holds any more."""
        with self.lock:
            st = os.fstat(fd)
            if st.st_nlink == 0:
                self.undo.pop(st.st_ino, None)

    # -- the attic ----------------------------------------------------------------------------

    def _collect_attic(self) -> None:
        """Delete attic entries no snapshot refers to (their removal is durable now)."""
        needed = {ino for snap in self.snapshots.values() for ino, _ in snap.values()}
        for entry in list(self.attic.iterdir()):
            try:
                st = os.lstat(entry)
                ino = int(entry.name)
            except (OSError, ValueError):
                continue
            if ino in needed:
                continue
            if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode):
                self.undo.pop(ino, None)
                self.snapshots.pop(ino, None)
            _remove(entry)

    # -- the power cut ------------------------------------------------------------------------

    def _index(self) -> dict[int, Path]:
        """inode -> one path of it, over the backing directory and the attic."""
        out: dict[int, Path] = {os.lstat(self.root).st_ino: self.root}
        stack = [self.root]
        while stack:
            d = stack.pop()
            with os.scandir(d) as it:
                for e in it:
                    ino = e.stat(follow_symlinks=False).st_ino
                    path = Path(e.path)
                    if ino not in out or path.parent == self.attic:
                        out[ino] = path
                    if e.is_dir(follow_symlinks=False):
                        stack.append(path)
        return out

    def power_cut(self) -> dict[str, Any]:
        """Drop every change not made durable: the backing directory becomes the durable state.
        Returns what was dropped."""
        with self.lock:
            self.cuts += 1
            report = {"files_reverted": 0, "bytes_restored": 0, "dirs_reverted": 0,
                      "entries_dropped": 0, "entries_restored": 0}
            index = self._index()
            for ino, undo in self.undo.items():
                path = index.get(ino)
                if path is None or not path.is_file():
                    continue
                fd = os.open(path, os.O_WRONLY)
                try:
                    for block, data in undo.blocks.items():
                        os.pwrite(fd, data, block * BLOCK)
                    os.ftruncate(fd, undo.size)
                finally:
                    os.close(fd)
                report["files_reverted"] += 1
                report["bytes_restored"] += undo.saved_bytes()
            self.undo.clear()
            # every entry that is live but not durable goes to the attic...
            for dino, snap in self.snapshots.items():
                directory = self._index().get(dino)
                if directory is None:
                    continue
                for name, (ino, _kind) in self._listing(directory).items():
                    if snap.get(name, (None, None))[0] != ino:
                        self._to_attic(directory / name, os.lstat(directory / name))
                        report["entries_dropped"] += 1
            # ...then every durable entry not live comes back from wherever its inode is
            for dino, snap in self.snapshots.items():
                directory = self._index().get(dino)
                if directory is None:
                    continue
                live = self._listing(directory)
                for name, (ino, kind) in snap.items():
                    if name in live:
                        continue
                    where = self._index().get(ino)
                    target = directory / name
                    if where is None:  # cannot happen while the attic keeps inodes; be safe
                        if kind == "dir":
                            os.mkdir(target)
                        else:
                            target.touch()
                    elif kind == "dir":
                        os.rename(where, target)
                    else:
                        os.link(where, target, follow_symlinks=False)
                    report["entries_restored"] += 1
                report["dirs_reverted"] += 1
            self.snapshots.clear()
            for entry in list(self.attic.iterdir()):
                _remove(entry)
            return report

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"unsynced_files": len(self.undo),
                    "saved_bytes": sum(u.saved_bytes() for u in self.undo.values()),
                    "unsynced_dirs": len(self.snapshots), "cuts": self.cuts}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
