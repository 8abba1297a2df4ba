"""The "test" section: the settings a reader needs to understand and reproduce a run.

test.json's exact keys belong to the harness; this looks for each setting under the names it may
have (top level or nested in `cluster`), and lists every remaining key as it is.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

# label -> candidate paths into test.json (dotted for nesting)
FIELDS: list[tuple[str, tuple[str, ...]]] = [
    ("name", ("name", "test_name", "settings.name")),
    ("status", ("status",)),
    ("workload", ("workload", "settings.workload")),
    ("nemesis", ("nemesis", "settings.nemesis")),
    ("platform", ("platform", "settings.platform")),
    ("store", ("settings.store", "store")),
    ("store options", ("settings.store_options", "store_options")),
    ("store version", ("store_version",)),
    ("N (replicas)", ("n", "cluster.n", "settings.cluster.n")),
    ("R", ("r", "cluster.r", "settings.cluster.r")),
    ("W", ("w", "cluster.w", "settings.cluster.w")),
    ("quorum mode", ("quorum", "quorum_mode", "sloppy_quorum", "cluster.sloppy_quorum",
                     "settings.cluster.sloppy_quorum")),
    ("nodes", ("nodes", "node_count", "cluster.nodes", "settings.cluster.nodes")),
    ("concurrency", ("concurrency", "settings.concurrency")),
    ("rate", ("rate", "settings.rate")),
    ("keys", ("keys", "settings.keys")),
    ("seed", ("seed", "settings.seed")),
    ("duration", ("duration_s", "duration", "time_limit", "time_limit_s", "settings.time_limit")),
    ("nemesis interval", ("nemesis_interval", "settings.nemesis_interval")),
    ("started", ("started_at", "started", "start_time", "timestamp")),
    ("versions", ("versions", "version")),
]
MECHANISM_PATHS = ("mechanisms", "fault_mechanisms", "fault_mechanism", "faults")
COMMAND_PATHS = ("command", "command_line", "cmdline", "argv", "reproduce")


def _lookup(test: dict[str, Any], path: str) -> tuple[bool, Any]:
    cur: Any = test
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _show(label: str, value: Any) -> str:
    if label == "quorum mode" and isinstance(value, bool):
        return "sloppy (fallback nodes count, with hints)" if value else "strict (primaries only)"
    if label == "nodes" and isinstance(value, list):
        ids = [str(n.get("id", n)) if isinstance(n, dict) else str(n) for n in value]
        return f"{len(ids)}: " + ", ".join(ids)
    if label == "nodes" and isinstance(value, dict):
        return f"{len(value)}: " + ", ".join(f"{k} ({v})" for k, v in value.items())
    if label in ("duration", "nemesis interval") and isinstance(value, int | float):
        return f"{value:g} s"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_flat(v)}" for k, v in value.items())
    return _flat(value)


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(map(str, value))
    return json.dumps(value, sort_keys=True, default=str)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested settings as dotted keys, so each is one row."""
    out: list[tuple[str, Any]] = []
    for k, v in sorted(d.items()):
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(prefix.split(".")) < 3:
            out += _flatten(v, name + ".")
        else:
            out.append((name, v))
    return out


def _shorten(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text):,} characters)"


def test_section(test: dict[str, Any]) -> dict[str, Any]:
    """{"fields": [(label, text)], "mechanisms": [(fault, how)], "command": str, "other": [...]}"""
    used: set[str] = set()
    fields = []
    for label, paths in FIELDS:
        for path in paths:
            found, value = _lookup(test, path)
            if found and value is not None:
                fields.append((label, _show(label, value)))
                used.add(path)
                break
    mechanisms: list[tuple[str, str]] = []
    for path in MECHANISM_PATHS:
        value = test.get(path)
        if isinstance(value, dict):
            mechanisms = [(str(k), _flat(v)) for k, v in value.items()]
            used.add(path)
            break
        if isinstance(value, str):
            mechanisms = [("all faults", value)]
            used.add(path)
            break
    command = ""
    for path in COMMAND_PATHS:
        value = test.get(path)
        if isinstance(value, list):
            command = shlex.join(map(str, value))
        elif isinstance(value, str):
            command = value
        if command:
            used.add(path)
            break
    other = [(k, _shorten(_flat(v))) for k, v in _flatten(test) if k not in used]
    return {"fields": fields, "mechanisms": mechanisms, "command": command, "other": other}
