"""A nemesis schedule as a file: what `harness hunt` writes and `harness run --schedule` plays.

JSON: {"format": "harness-schedule/1", "nodes": [...], "actions": [{"at", "f", "fault",
"value", "id"}, ...]} (the actions of `nemesis.schedule.plan`, the same as test.json's
"schedule"), plus free-form "note" and "found" fields for the reader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemesis.schedule import FAULTS, Action

FORMAT = "harness-schedule/1"


def actions_to_json(actions: Sequence[Action]) -> list[dict[str, Any]]:
    return [{"at": a.at, "f": a.f, "fault": a.fault, "value": a.value, "id": a.id}
            for a in actions]


def save_schedule(path: Path, actions: Sequence[Action], nodes: Sequence[str],
                  **extra: Any) -> None:
    doc = {"format": FORMAT, "nodes": list(nodes), "actions": actions_to_json(actions), **extra}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def load_schedule(path: str | Path) -> tuple[list[Action], list[str]]:
    """(actions sorted by time, ending with one heal; the node ids it names). Raises
    ValueError saying what is wrong."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"schedule {path}: {e}") from None
    raw = doc.get("actions") if isinstance(doc, dict) else doc  # a test.json "schedule" list too
    if not isinstance(raw, list):
        raise ValueError(f"schedule {path}: no list of actions")
    actions = []
    for i, item in enumerate(raw):
        try:
            action = Action(float(item["at"]), str(item["f"]), item.get("fault"),
                            dict(item.get("value") or {}), int(item.get("id", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"schedule {path}: action {i} is malformed: {e}") from None
        if action.f not in ("start", "stop", "heal") or (
                action.f != "heal" and action.fault not in FAULTS):
            raise ValueError(f"schedule {path}: action {i}: unknown step {action.f} "
                             f"{action.fault}")
        actions.append(action)
    actions.sort(key=lambda a: (a.at, a.f == "heal", a.f != "stop", a.id))
    if not actions or actions[-1].f != "heal":
        end = max((a.at for a in actions), default=0.0)
        actions.append(Action(end, "heal", None, {}, 0))
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    return actions, list(nodes) if isinstance(nodes, list) else named_nodes(actions)


def named_nodes(actions: Sequence[Action]) -> list[str]:
    """Every node id an action names."""
    found: set[str] = set()
    for a in actions:
        v = a.value
        found.update(v.get("nodes") or [])
        found.update(v.get("offsets") or {})
        for node, drop in (v.get("grudge") or {}).items():
            found.add(node)
            found.update(drop)
    return sorted(found)


def faults_of(actions: Sequence[Action]) -> int:
    """How many faults the schedule starts."""
    return sum(1 for a in actions if a.f == "start")
