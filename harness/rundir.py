"""Run directories: `<out>/<test-name>/<timestamp>/`, `test.json`, and the `latest` symlink."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import orjson

from harness.history import ORJSON_OPTIONS


def make_run_dir(out: Path, test_name: str) -> Path:
    """A fresh, uniquely named directory for one run (a suffix is added if the second repeats)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = out / test_name
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        path = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "nodes").mkdir()
        return path
    raise RuntimeError(f"could not create a run directory under {base}")


def point_latest(out: Path, run_dir: Path) -> Path:
    """Make `<out>/latest` a relative symlink to `run_dir`, replacing it atomically."""
    link = out / "latest"
    target = os.path.relpath(run_dir.resolve(), out.resolve())
    tmp = out / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
    return link


_ORJSON_OPTS = ORJSON_OPTIONS | orjson.OPT_INDENT_2  # the history's, indented


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file, so a reader never sees half of it. orjson, as for
    the history: json's indenting encoder is pure Python, and replicas.json (every key's
    replicas) is written inside the timed run; json remains the fallback for what orjson
    refuses (ints over 64 bits)."""
    try:
        raw = orjson.dumps(data, default=str, option=_ORJSON_OPTS)
    except TypeError:  # orjson.JSONEncodeError
        raw = (json.dumps(data, indent=1, default=str) + "\n").encode()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)
