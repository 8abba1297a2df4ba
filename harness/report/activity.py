"""Hinted handoff, anti-entropy and read-repair activity per node, counted from the node logs.

The node API has no counters for these in the run directory, so the report counts log lines that
mention them, and says that this is how the numbers were obtained.
"""

from __future__ import annotations

import re
from pathlib import Path

SCAN_LIMIT_BYTES = 32 * 2**20
PATTERNS: dict[str, re.Pattern[bytes]] = {
    "hinted handoff": re.compile(rb"hint|handoff|hand-off", re.IGNORECASE),
    "anti-entropy": re.compile(rb"anti.?entropy|merkle", re.IGNORECASE),
    "read repair": re.compile(rb"read.?repair", re.IGNORECASE),
}


def count_activity(logs: dict[str, Path]) -> tuple[list[dict[str, object]], list[str]]:
    """Rows {"node", <activity>: lines, ...} and notes about logs that were only partly read."""
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    for node, path in sorted(logs.items()):
        counts = dict.fromkeys(PATTERNS, 0)
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                data = f.read(SCAN_LIMIT_BYTES)
        except OSError as e:
            notes.append(f"{node}: log unreadable ({e}).")
            continue
        if size > SCAN_LIMIT_BYTES:
            notes.append(f"{node}: only the first {SCAN_LIMIT_BYTES // 2**20} MiB of "
                         f"{size / 2**20:.0f} MiB of log were counted.")
        for line in data.splitlines():
            for name, pattern in PATTERNS.items():
                if pattern.search(line):
                    counts[name] += 1
        rows.append({"node": node, **counts})
    return rows, notes
