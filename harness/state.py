"""The state directory: what each run or cluster started, so that cleanup never guesses.

Each session (a `harness run`, or a `harness cluster up`) keeps one JSON file under
`$HARNESS_STATE_DIR/sessions/` (default `~/.cache/dynamo-harness/`), naming the processes it
started with their start times and command lines. Cleanup kills a pid only when both still match,
so a recycled pid that now belongs to someone else is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ENV_VAR = "HARNESS_STATE_DIR"


def state_dir() -> Path:
    root = os.environ.get(ENV_VAR) or str(Path.home() / ".cache" / "dynamo-harness")
    path = Path(root)
    (path / "sessions").mkdir(parents=True, exist_ok=True)
    return path


def process_identity(pid: int) -> dict[str, Any]:
    """What is needed to recognise this process later: pid, start time, command line."""
    proc = psutil.Process(pid)
    return {"pid": pid, "create_time": proc.create_time(), "cmdline": proc.cmdline()}


def matching_process(ident: dict[str, Any] | None) -> psutil.Process | None:
    """The live process `ident` describes, or None if it is gone or the pid was reused."""
    if not ident:
        return None
    try:
        proc = psutil.Process(int(ident["pid"]))
        if abs(proc.create_time() - float(ident["create_time"])) > 0.05:
            return None
        if ident.get("cmdline") and proc.cmdline() != ident["cmdline"]:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return None


@dataclass
class Session:
    """One session's record; `save()` after every change (written atomically)."""

    kind: str  # "run" | "cluster"
    dir: str
    id: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8])
    owner: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return state_dir() / "sessions" / f"{self.id}.json"

    def save(self) -> None:
        data = {"id": self.id, "kind": self.kind, "dir": self.dir, "owner": self.owner,
                "nodes": self.nodes, "faults": self.faults, "extra": self.extra}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> Session:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(kind=data["kind"], dir=data["dir"], id=data["id"], owner=data.get("owner", {}),
                   nodes=data.get("nodes", {}), faults=data.get("faults", {}),
                   extra=data.get("extra", {}))

    @classmethod
    def create(cls, kind: str, directory: Path) -> Session:
        session = cls(kind=kind, dir=str(directory))
        if kind == "run":
            session.owner = process_identity(os.getpid())
        session.save()
        return session


def sessions() -> list[Session]:
    out = []
    for path in sorted((state_dir() / "sessions").glob("*.json")):
        try:
            out.append(Session.load(path))
        except (OSError, ValueError, KeyError):
            continue
    return out


def owner_alive(session: Session) -> bool:
    return matching_process(session.owner) is not None


def kill_recorded(ident: dict[str, Any], grace_s: float = 2.0) -> bool:
    """Stop the recorded process if it is still the same one: SIGCONT, SIGTERM, then SIGKILL."""
    proc = matching_process(ident)
    if proc is None:
        return False
    try:
        proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        proc.terminate()
        if not _wait_gone(proc, grace_s):
            proc.kill()
            _wait_gone(proc, grace_s)
    except psutil.NoSuchProcess:
        pass
    return True


def _wait_gone(proc: psutil.Process, timeout_s: float) -> bool:
    """True once the process has exited (a zombie whose parent has not reaped it counts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
