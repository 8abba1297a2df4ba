"""Reading a run directory's files for the report, tolerating any optional one being absent.

Nothing here raises for a missing or damaged optional file: it is recorded in `RunData.notes` so
the page can say what it could not show and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.history import HistoryError, Op, read_jsonl, read_jsonl_rows

LOG_TAIL_BYTES = 64 * 1024


@dataclass
class RunData:
    run_dir: Path
    test: dict[str, Any] = field(default_factory=dict)
    history: list[Op] = field(default_factory=list)
    results: dict[str, Any] | None = None
    replicas: dict[str, Any] | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)  # stats.jsonl: node counters
    node_logs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what is missing or damaged, for the page
    present: dict[str, bool] = field(default_factory=dict)


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes.append(f"{path.name} is missing.")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        notes.append(f"{path.name} could not be read: {e}.")
    return None


def read_rows(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file (`checkers.history.read_jsonl_rows`: a torn last line is
    dropped with a note; any other bad line is noted and the file's rows are not shown)."""
    if not path.exists():
        notes.append(f"{path.name} is missing.")
        return []
    try:
        return [row for _, row in read_jsonl_rows(path, notes.append)]
    except HistoryError as e:
        notes.append(f"{e}; {path.name} is not shown.")
        return []


def read_ops(path: Path, notes: list[str]) -> list[Op]:
    """`history.jsonl` as the checkers read it (`checkers.history.read_jsonl`), damage noted."""
    if not path.exists():
        notes.append(f"{path.name} is missing.")
        return []
    try:
        return read_jsonl(path, notes.append)
    except HistoryError as e:
        notes.append(f"{e}; {path.name} is not shown.")
        return []


def load_run(run_dir: Path) -> RunData:
    """Everything the report draws from `run_dir`; raises only if the folder itself is absent."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist or is not a folder")
    data = RunData(run_dir=run_dir)
    notes = data.notes

    test = _read_json(run_dir / "test.json", notes)
    data.test = test if isinstance(test, dict) else {}
    data.present["test.json"] = isinstance(test, dict)

    data.history = read_ops(run_dir / "history.jsonl", notes)
    data.present["history.jsonl"] = (run_dir / "history.jsonl").exists()

    results = _read_json(run_dir / "results.json", notes)
    if results is not None and not isinstance(results, dict):
        notes.append("results.json is not a JSON object; checker results are not shown.")
        results = None
    data.results = results
    data.present["results.json"] = results is not None
    if results and not data.test and isinstance(results.get("test"), dict):
        data.test = results["test"]  # results carry a copy of the settings

    if (run_dir / "replicas.json").exists():
        replicas = _read_json(run_dir / "replicas.json", notes)
        data.replicas = replicas if isinstance(replicas, dict) else None
    else:
        notes.append("replicas.json is missing (no final per-replica state).")
    data.present["replicas.json"] = data.replicas is not None

    if (run_dir / "resources.jsonl").exists():
        data.resources = read_rows(run_dir / "resources.jsonl", notes)
    else:
        notes.append("resources.jsonl is missing (no per-node CPU and memory samples).")
    data.present["resources.jsonl"] = bool(data.resources)

    # no note when absent: section 6 says what it shows instead
    if (run_dir / "stats.jsonl").exists():
        data.stats = read_rows(run_dir / "stats.jsonl", notes)
    data.present["stats.jsonl"] = (run_dir / "stats.jsonl").exists()

    nodes_dir = run_dir / "nodes"
    if nodes_dir.is_dir():
        for child in sorted(nodes_dir.iterdir()):
            log = child / "node.log"
            if log.is_file():
                data.node_logs[child.name] = log
    if not data.node_logs:
        notes.append("No node logs (nodes/<id>/node.log) in the run directory.")
    return data


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> tuple[str, bool]:
    """The last `limit` bytes of a log as text, and whether it was shortened."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size > limit:
            f.seek(size - limit)
        raw = f.read()
    text = raw.decode("utf-8", errors="replace")
    if size > limit:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    return text, size > limit
