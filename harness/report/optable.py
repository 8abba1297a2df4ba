"""Every operation, encoded compactly for the page's paginated, filterable table.

Columns, not rows, with repeated strings (processes, functions, keys, nodes, errors) replaced by
codes into small dictionaries and times delta-encoded: a 100,000-op history fits in a few MB. Past
`GZIP_OVER` bytes the JSON is gzipped and base64-encoded, and the page inflates it with the
browser's DecompressionStream.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from checkers.history import Call
from harness.report.figures import describe_value
from harness.report.ops import OUTCOMES

GZIP_OVER = 1_500_000
VALUE_CHARS = 48


class _Codes:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def code(self, value: Any) -> int:
        if value is None:
            return -1
        text = value if isinstance(value, str) else describe_value(value, 60)
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.items)
            self.items.append(text)
        return i


def encode_ops(ops: list[Call]) -> dict[str, Any]:
    """The column store {"n", "dict", "cols"}: times in 0.1 ms units, latency in 0.01 ms."""
    procs, fs, keys, nodes, errors = _Codes(), _Codes(), _Codes(), _Codes(), _Codes()
    cols: dict[str, list[Any]] = {c: [] for c in ("i", "t", "d", "p", "f", "k", "y", "n", "v", "e",
                                                  "s")}
    last_t = last_i = 0
    for op in ops:
        t = op.time // 100_000
        cols["t"].append(t - last_t)
        last_t = t
        cols["i"].append(op.index - last_i)
        last_i = op.index
        cols["d"].append(-1 if op.end is None else (op.end - op.time) // 10_000)
        cols["p"].append(procs.code(str(op.process)))
        cols["f"].append(fs.code(op.f))
        cols["k"].append(keys.code(op.key))
        cols["y"].append(OUTCOMES.index(op.type))
        cols["n"].append(nodes.code(op.node))
        shown = op.shown_value
        cols["v"].append("" if shown is None else describe_value(shown, VALUE_CHARS))
        cols["e"].append(errors.code(op.error) if op.type != "ok" else -1)
        cols["s"].append(-1 if op.siblings is None else op.siblings)
    if all(s == -1 for s in cols["s"]):
        del cols["s"]
    return {
        "n": len(ops),
        "dict": {"p": procs.items, "f": fs.items, "k": keys.items, "n": nodes.items,
                 "e": errors.items, "y": list(OUTCOMES)},
        "cols": cols,
    }


def embed_ops(ops: list[Call]) -> tuple[str, str]:
    """(encoding, payload) for a script tag: ("json", text) or ("gzip-base64", text)."""
    text = json.dumps(encode_ops(ops), separators=(",", ":"), ensure_ascii=False)
    if len(text) <= GZIP_OVER:
        return "json", text.replace("</", "<\\/")
    packed = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
    return "gzip-base64", base64.b64encode(packed).decode("ascii")
