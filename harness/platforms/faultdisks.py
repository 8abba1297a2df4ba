"""The local platform's faultfs mounts for the power nemesis: one per node, over its data
directory (`<node>/data`, the files living in `<node>/disk`), so that a power cut can drop
whatever the node wrote without making it durable.

Each mount is a `python3 -m harness.faultfs` process. Its mountpoint, control socket and process
are written into the session record (`extra.faultfs`) before it is mounted, so that teardown and
`harness cleanup` stop and unmount exactly those.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from harness.faultfs.mount import FaultMount, socket_path, unavailable, unmount
from harness.platforms.base import PlatformError
from harness.state import Session, kill_recorded, process_identity

KEY = "faultfs"
MECHANISM = ("SIGKILL of the node process, then a power cut of its faultfs data directory "
             "(every write and directory entry not fsynced is dropped), restarted by the harness")


class FaultDisks:
    def __init__(self, session: Session, root: Path, nodes: list[str]) -> None:
        why = unavailable()
        if why:
            raise PlatformError(f"the power nemesis needs faultfs (FUSE): {why}")
        self.session = session
        self.root = root
        self.nodes = nodes
        self.mounts: dict[str, FaultMount] = {}

    def data_dir(self, node: str) -> Path:
        return self.root / node / "data"

    def _record(self) -> dict[str, Any]:
        return self.session.extra.setdefault(KEY, {})

    def mount_all(self) -> None:
        """Mount every node's data directory (those not mounted yet)."""
        for node in self.nodes:
            if node in self.mounts:
                continue
            mount = FaultMount(self.data_dir(node), self.root / node / "disk",
                               socket_path(node), log=self.root / node / "faultfs.log")
            self._record()[node] = {"mountpoint": str(mount.mountpoint),
                                    "socket": str(mount.control)}
            self.session.save()  # recorded before it is made
            try:
                mount.start()
            except OSError as e:
                raise PlatformError(f"faultfs for {node}: {e}") from None
            assert mount.proc is not None
            with contextlib.suppress(Exception):
                self._record()[node]["process"] = process_identity(mount.proc.pid)
            self.session.save()
            self.mounts[node] = mount

    def cut(self, node: str) -> dict[str, Any]:
        """Drop everything the node's data directory holds unsynced; what was dropped."""
        mount = self.mounts.get(node)
        if mount is None:
            raise PlatformError(f"{node} has no faultfs mount")
        try:
            answer = mount.cut()
        except OSError as e:
            raise PlatformError(f"power cut of {node}: {e}") from None
        answer.pop("ok", None)
        return answer

    def unmount_all(self) -> dict[str, str]:
        errors = {}
        for node, mount in list(self.mounts.items()):
            err = mount.stop()
            if err:
                errors[node] = err
            else:
                self.mounts.pop(node)
                self._record().pop(node, None)
        if not self._record():
            self.session.extra.pop(KEY, None)
        self.session.save()
        return errors


def describe_recorded(record: dict[str, Any]) -> list[str]:
    return [f"faultfs mount {entry.get('mountpoint')}" for entry in record.values()]


def remove_recorded(record: dict[str, Any]) -> tuple[list[str], bool]:
    """Stop and unmount the faultfs mounts a session recorded (`harness cleanup`)."""
    done, complete = [], True
    for entry in record.values():
        ident = entry.get("process")
        if ident:
            kill_recorded(ident)  # SIGTERM: libfuse unmounts on its way out
        mountpoint = Path(entry["mountpoint"])
        err = unmount(mountpoint)
        if err:
            done.append(f"faultfs mount {mountpoint} not removed: {err}")
            complete = False
        else:
            done.append(f"faultfs mount {mountpoint}")
        with contextlib.suppress(OSError):
            Path(entry["socket"]).unlink()
    return done, complete
