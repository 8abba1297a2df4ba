"""`render_index`: reports/index.html, every run under a folder, newest first, by verdict."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from checkers.verdict import NOT_APPLICABLE

RUN_MARKERS = ("results.json", "test.json", "history.jsonl")
MAX_DEPTH = 4
_STAMP_FORMATS = ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y-%m-%dT%H-%M-%S", "%Y-%m-%dT%H:%M:%S",
                  "%Y%m%d-%H%M%S", "%Y-%m-%d_%H-%M-%S")


@dataclass
class RunEntry:
    path: Path
    rel: str
    name: str
    when: dt.datetime
    verdict: str
    failing: list[str]
    summary: str
    settings: str
    has_report: bool
    is_latest: bool
    not_applicable: list[str] = field(default_factory=list)  # checkers that judged nothing


def find_runs(root: Path) -> list[Path]:
    """Folders under root holding a run's files (symlinks such as `latest` are not followed)."""
    runs: list[Path] = []
    root = Path(root)

    def walk(d: Path, depth: int) -> None:
        try:
            children = sorted(d.iterdir())
        except OSError:
            return
        if any((d / m).is_file() for m in RUN_MARKERS) and d != root:
            runs.append(d)
            return
        if depth >= MAX_DEPTH:
            return
        for c in children:
            if c.is_dir() and not c.is_symlink() and not c.name.startswith("."):
                walk(c, depth + 1)

    walk(root, 0)
    return runs


def _parse_when(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float) and value > 0:
        secs = value / 1e9 if value > 1e14 else value / 1e3 if value > 1e11 else value
        return dt.datetime.fromtimestamp(secs, dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
        for fmt in _STAMP_FORMATS:
            try:
                return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
    return None


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _entry(root: Path, run: Path, latest: Path | None) -> RunEntry:
    test = _load(run / "test.json")
    results = _load(run / "results.json")
    test = test if isinstance(test, dict) else {}
    results = results if isinstance(results, dict) else {}
    if not test and isinstance(results.get("test"), dict):
        test = results["test"]
    when = None
    for key in ("started", "start_time", "started_at", "timestamp"):
        when = when or _parse_when(test.get(key))
    when = when or _parse_when(run.name) or dt.datetime.fromtimestamp(
        run.stat().st_mtime, dt.UTC)
    verdict = results.get("verdict") if results.get("verdict") in (
        "valid", "invalid", "unknown") else "unknown"
    checkers = results.get("checkers") if isinstance(results.get("checkers"), dict) else {}
    failing = [n for n, c in checkers.items()
               if isinstance(c, dict) and c.get("verdict") not in ("valid", NOT_APPLICABLE)]
    not_applicable = [n for n, c in checkers.items()
                      if isinstance(c, dict) and c.get("verdict") == NOT_APPLICABLE]
    summary = next((str(c.get("summary", "")) for n, c in checkers.items()
                    if n in failing and isinstance(c, dict)), "")
    if not results:
        summary = "no results.json (the run did not finish checking)"
    settings = " · ".join(str(test[k]) for k in ("workload", "nemesis", "platform")
                          if test.get(k))
    name = str(test.get("name") or (run.parent.name if run.parent != root else run.name))
    return RunEntry(
        path=run, rel=run.relative_to(root).as_posix(), name=name, when=when, verdict=verdict,
        failing=failing, summary=summary, settings=settings,
        has_report=(run / "report.html").is_file(),
        is_latest=latest is not None and run.resolve() == latest, not_applicable=not_applicable,
    )


def collect(root: Path) -> list[RunEntry]:
    """Every run under root, newest first."""
    root = Path(root)
    link = root / "latest"
    latest = link.resolve() if link.is_symlink() or link.is_dir() else None
    entries = [_entry(root, r, latest) for r in find_runs(root)]
    entries.sort(key=lambda e: (e.when, e.rel), reverse=True)
    return entries


def render_index(root: Path) -> Path:
    """Write `root/index.html` listing every run under root, newest first; return its path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"reports folder {root} does not exist")
    entries = collect(root)
    counts = {v: sum(e.verdict == v for e in entries) for v in ("valid", "invalid", "unknown")}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.get_template("index.html.j2").render(
        entries=entries, counts=counts, root=str(root),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        href=quote,
    )
    out = root / "index.html"
    tmp = out.with_name(f".index.html.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
