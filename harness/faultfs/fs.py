"""The FUSE side of faultfs: a passthrough to the backing directory through the `Tracker`.

Runs under mfusepy (ctypes over libfuse 3), multi-threaded. File handles are numbers of our own
(not the backing descriptors), tagged with the power-cut generation they were opened in: after a
cut every older handle answers EIO, as a descriptor of a crashed machine would, and a handle's
number is never reused for another file.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any

import mfusepy

from harness.faultfs.tracker import ATTIC, Tracker

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
             "st_blksize", "st_rdev")
TIME_KEYS = ("st_atime", "st_mtime", "st_ctime")  # in nanoseconds (use_ns)


@dataclass
class Handle:
    fd: int  # the backing descriptor (open until released); -1 for a directory
    ino: int
    generation: int
    sync: bool  # opened O_SYNC / O_DSYNC: every write is durable at once


def _errno(code: int) -> mfusepy.FuseOSError:
    return mfusepy.FuseOSError(code)


class FaultFS(mfusepy.Operations):
    use_ns = True

    def __init__(self, tracker: Tracker) -> None:
        self.t = tracker
        self.handles: dict[int, Handle] = {}
        self.numbers = itertools.count(1)
        self.generation = 0
        self.hlock = threading.Lock()

    # -- the control channel's entry ----------------------------------------------------------

    def power_cut(self) -> dict[str, Any]:
        """Drop everything unsynced; every open handle goes stale."""
        with self.t.lock:
            self.generation += 1
            with self.hlock:  # kept open until released, so no number is reused meanwhile
                stale = sum(1 for h in self.handles.values() if h.fd >= 0)
            report = self.t.power_cut()
            report["handles_stale"] = stale
            return report

    # -- helpers ------------------------------------------------------------------------------

    def _handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None or h.generation != self.generation:
            raise _errno(errno.EIO)
        return h

    def _new_handle(self, fd: int, ino: int, sync: bool) -> int:
        with self.hlock:
            number = next(self.numbers)
            self.handles[number] = Handle(fd, ino, self.generation, sync)
            return number

    # -- metadata -----------------------------------------------------------------------------

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if config_3 is not None:
            config_3.entry_timeout = 0.0
            config_3.attr_timeout = 0.0
            config_3.negative_timeout = 0.0
            config_3.use_ino = 1
            config_3.hard_remove = 1
            config_3.kernel_cache = 0

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self.t.path(path))
        out = {k: getattr(st, k) for k in STAT_KEYS}
        out.update({k: getattr(st, k + "_ns") for k in TIME_KEYS})
        return out

    def access(self, path: str, amode: int) -> int:
        if not os.access(self.t.path(path), amode, follow_symlinks=False):
            raise _errno(errno.EACCES)
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self.t.path(path))

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self.t.path(path), mode, follow_symlinks=False)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self.t.path(path), uid, gid, follow_symlinks=False)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self.t.path(path), ns=times, follow_symlinks=False)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.t.path(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}

    # -- directories --------------------------------------------------------------------------

    def opendir(self, path: str) -> int:
        st = os.lstat(self.t.path(path))
        return self._new_handle(-1, st.st_ino, False)

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # with use_ino an entry needs its inode: the kernel skips entries whose inode is 0
        directory = self.t.path(path)
        top = path.strip("/") == ""
        st = os.lstat(directory)
        out = [(".", {"st_mode": st.st_mode, "st_ino": st.st_ino}, 0)]
        parent = os.lstat(directory.parent) if not top else st
        out.append(("..", {"st_mode": parent.st_mode, "st_ino": parent.st_ino}, 0))
        with os.scandir(directory) as it:
            for e in it:
                if top and e.name == ATTIC:
                    continue
                mode = e.stat(follow_symlinks=False).st_mode
                out.append((e.name, {"st_mode": mode, "st_ino": e.inode()}, 0))
        return out

    def releasedir(self, path: str, fh: int) -> int:
        with self.hlock:
            self.handles.pop(fh, None)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        h = self._handle(fh)
        self.t.fsyncdir(path, h.ino)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self.t.mkdir(path, mode)
        return 0

    def rmdir(self, path: str) -> int:
        self.t.rmdir(path)
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        self.t.mknod(path, mode, dev)
        return 0

    def symlink(self, target: str, source: str) -> int:
        # mfusepy: symlink(target=the new link's path, source=what it points to)
        self.t.symlink(target, source)
        return 0

    def link(self, target: str, source: str) -> int:
        self.t.link(target, source)
        return 0

    def unlink(self, path: str) -> int:
        self.t.unlink(path)
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        # mfusepy 3.1 does not pass renameat2's flags on (it calls rename(old, new)); taken
        # here in case a later one does
        if flags & RENAME_EXCHANGE:
            raise _errno(errno.EINVAL)
        self.t.rename(old, new, noreplace=bool(flags & RENAME_NOREPLACE))
        return 0

    # -- files --------------------------------------------------------------------------------

    def _open(self, path: str, flags: int, mode: int = 0o644) -> int:
        fd = self.t.open(path, flags & ~os.O_DIRECT if hasattr(os, "O_DIRECT") else flags, mode)
        ino = os.fstat(fd).st_ino
        return self._new_handle(fd, ino, bool(flags & os.O_DSYNC))

    def open(self, path: str, flags: int) -> int:
        return self._open(path, flags)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        flags = (fi if isinstance(fi, int) else os.O_WRONLY) | os.O_CREAT
        return self._open(path, flags, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(self._handle(fh).fd, size, offset)  # never a reused descriptor

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.t.lock:  # checked under the lock: a cut may come in between
            h = self._handle(fh)
            return self.t.write(h.fd, data, offset, sync=h.sync)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh:
            with self.t.lock:
                self.t.truncate(path, length, self._handle(fh).fd)
        else:
            self.t.truncate(path, length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.t.lock:  # a stale handle's fsync must not count
            self.t.fsync(self._handle(fh).fd)
        return 0

    def release(self, path: str, fh: int) -> int:
        with self.hlock:
            h = self.handles.pop(fh, None)
        if h is not None and h.fd >= 0:
            with self.t.lock:
                if h.generation == self.generation:
                    self.t.released(h.fd)
                os.close(h.fd)
        return 0
