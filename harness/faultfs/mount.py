"""Mounting faultfs from another process: start `python3 -m harness.faultfs` for a mountpoint,
wait until the mount answers, send it power cuts, and unmount it whatever state it is in."""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.faultfs import control

MOUNT_TIMEOUT_S = 15.0


def unavailable() -> str | None:
    """Why faultfs cannot mount on this machine (saying what to install), or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is not installed (apt-get install fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the Python package mfusepy is not installed (pip install 'mfusepy>=3.1')"
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (apt-get install fuse3)"
    return None


def _unescape(field: str) -> str:
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def mounted(path: Path) -> bool:
    """Whether something is mounted at `path` (from /proc/self/mountinfo: a stat of a dead FUSE
    mount would fail)."""
    target = os.path.abspath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(len(parts) > 4 and _unescape(parts[4]) == target
               for parts in (line.split(" ") for line in lines))


def unmount(path: Path) -> str | None:
    """Unmount `path` if mounted (lazily when busy); an error message, or None."""
    if not mounted(path):
        return None
    tools = [["fusermount3", "-u", "-z", str(path)], ["umount", "-l", str(path)]]
    errors = []
    for cmd in tools:
        if shutil.which(cmd[0]) is None:
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        if proc.returncode == 0 or not mounted(path):
            return None
        errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return "; ".join(errors) or "no fusermount3 or umount to unmount with"


def socket_path(tag: str) -> Path:
    """A control socket path short enough for AF_UNIX (108 bytes), whatever the run directory."""
    return Path("/tmp") / f"faultfs-{tag}-{secrets.token_hex(3)}.sock"


class FaultMount:
    """One faultfs process: `mountpoint` shows `backing` through the durability model."""

    def __init__(self, mountpoint: Path, backing: Path, control_socket: Path,
                 log: Path | None = None) -> None:
        self.mountpoint = mountpoint.resolve()
        self.backing = backing.resolve()
        self.control = control_socket
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.argv_extra: list[str] = []  # e.g. --sync-backing

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "harness.faultfs", str(self.mountpoint),
                "--backing", str(self.backing), "--control", str(self.control),
                *self.argv_extra]

    def start(self, timeout_s: float = MOUNT_TIMEOUT_S) -> None:
        """Mount, and return once the mount and its control socket answer."""
        err = unmount(self.mountpoint)  # a dead faultfs leaves its mount answering ENOTCONN
        if err:
            raise OSError(f"{self.mountpoint} is still mounted: {err}")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.backing.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the harness itself, for `-m`
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OSError(f"faultfs exited with code {self.proc.returncode} before "
                              f"mounting {self.mountpoint}" + self._log_tail())
            if mounted(self.mountpoint):
                with contextlib.suppress(OSError):
                    control.request(self.control, "ping", timeout_s=2)
                    return
            time.sleep(0.05)
        self.stop()
        raise OSError(f"faultfs did not mount {self.mountpoint} within {timeout_s:.0f} s"
                      + self._log_tail())

    def _log_tail(self) -> str:
        if not self.log:
            return ""
        try:
            return "; its log ends:\n" + "\n".join(
                self.log.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def cut(self) -> dict[str, Any]:
        """The power cut: drop everything not synced. Returns what was dropped."""
        return control.request(self.control, "cut")

    def status(self) -> dict[str, Any]:
        return control.request(self.control, "status")

    def stop(self) -> str | None:
        """Unmount and end the process (idempotent); an error message, or None."""
        err = unmount(self.mountpoint)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            self.control.unlink()
        return err

    def __enter__(self) -> FaultMount:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
