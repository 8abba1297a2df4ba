"""The control channel of a faultfs process: a unix socket taking one JSON command per line.

Commands: `{"cmd": "status"}` (what is unsynced now), `{"cmd": "cut"}` (the power cut: drop
every unsynced change; the answer says what was dropped), `{"cmd": "ping"}`. Each answer is one
JSON line: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def serve(path: Path, handle: Handler) -> threading.Thread:
    """Listen on `path` in a daemon thread; each connection may send several commands."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(8)

    def one(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    answer = {"ok": True, **handle(json.loads(line))}
                except Exception as e:  # a bad command must not stop the filesystem
                    answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, name="faultfs-control", daemon=True)
    thread.start()
    return thread


def request(path: Path, cmd: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one command and return the answer; OSError when the process does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError(f"faultfs at {path} closed the connection")
            buf += chunk
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise OSError(f"faultfs {cmd}: {answer.get('error')}")
    return answer
