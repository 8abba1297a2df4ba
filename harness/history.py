"""The history writer: one JSON object a line, flushed as each operation happens.

Flushing every line means a harness that dies (even by kill -9) leaves the history so far on disk;
at worst its last line is torn, which the one reader (`checkers.history.read_jsonl`) drops with a
warning. The simulator (`flush_each=False`) writes through a buffer instead, flushed when the
history is closed (its runs last seconds, and a replay gives the same history again).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

FIELD_ORDER = ("process", "type", "f", "fault", "key", "value", "node")
# json.dumps(record, separators=(",", ":"), default=str), without building an encoder per line:
# the fallback for what orjson refuses (an int over 64 bits, a lone surrogate)
_json_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
# orjson writes the same compact JSON several times faster (UTF-8 rather than \u escapes, and
# floats in their shortest form); dataclasses and datetimes still go through str, as with json
ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE)


def encode_line(record: dict[str, Any]) -> bytes:
    """One history line (with its newline), UTF-8: deterministic for a given record."""
    try:
        return orjson.dumps(record, default=str, option=ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return (_json_encode(record) + "\n").encode()


class History:
    """Appends operations to `history.jsonl`, numbering them and stamping harness-monotonic time."""

    def __init__(self, path: Path, started_ns: int | None = None,
                 flush_each: bool = True) -> None:
        self.path = path
        self.started_ns = time.monotonic_ns() if started_ns is None else started_ns
        self._file: BinaryIO = path.open("ab", buffering=-1 if flush_each else 1 << 20)
        self._flush_each = flush_each
        self._lock = threading.Lock()  # nemesis steps can finish on worker threads
        self._index = 0

    def now(self) -> int:
        """Nanoseconds since the test began."""
        return time.monotonic_ns() - self.started_ns

    def append(self, **op: Any) -> dict[str, Any]:
        """Write one operation; `index` and `time` are filled in unless given."""
        with self._lock:
            when = op.pop("time", None)
            record = {"index": self._index, "time": self.now() if when is None else when}
            for name in FIELD_ORDER:  # a stable, readable order; the rest follow
                if name in op:
                    record[name] = op.pop(name)
            record.update(op)
            self._file.write(encode_line(record))
            if self._flush_each:
                self._file.flush()
            self._index += 1
            return record

    @property
    def count(self) -> int:
        return self._index

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

