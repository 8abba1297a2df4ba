"""The one policy for bad lines in the JSON Lines files the harness reads (docs/history.md):
`harness check`, the runner's check and the report all read through
`checkers.history.read_jsonl_rows`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checkers.history import (
    HistoryError,
    TornLineWarning,
    from_events,
    read_jsonl,
    read_jsonl_rows,
)
from harness.report.render import build_context

OPS = from_events([(0, "invoke", "write", 1), (0, "ok", "write", 1),
                   (1, "invoke", "read", None), (1, "ok", "read", 1)], key="k")
GOOD = "".join(json.dumps(o.to_dict()) + "\n" for o in OPS)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("bad, problem", [
    ("{oops", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("42", "expected a JSON object, got int"),
])
def test_a_bad_line_in_the_middle_is_an_error_naming_it(tmp_path: Path, bad: str,
                                                       problem: str) -> None:
    lines = GOOD.splitlines()
    p = write(tmp_path / "h.jsonl", "\n".join([*lines[:2], bad, *lines[2:]]) + "\n")
    with pytest.raises(HistoryError, match=rf"h\.jsonl line 3: {problem}") as e:
        read_jsonl_rows(p)
    assert e.value.line == 3


def test_a_bad_last_line_ending_in_a_newline_is_an_error_too(tmp_path: Path) -> None:
    """A writer killed mid-line never wrote the newline: a bad line before one is damage."""
    p = write(tmp_path / "h.jsonl", GOOD + '{"process": 0, "ty\n')
    with pytest.raises(HistoryError, match=r"line 5: not valid JSON"):
        read_jsonl(p)


def test_bad_utf8_is_an_error_naming_the_line(tmp_path: Path) -> None:
    lines = GOOD.encode().splitlines(keepends=True)
    p = write(tmp_path / "h.jsonl", lines[0] + b'{"f": "\xff"}\n' + b"".join(lines[1:]))
    with pytest.raises(HistoryError, match=r"line 2: not UTF-8"):
        read_jsonl_rows(p)


@pytest.mark.parametrize("torn", [b'{"index": 4, "ti', b'{"index": 4, "f": "\xe2\x82', b"[1"])
def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path: Path, torn: bytes) -> None:
    """Torn inside a string, inside a multi-byte character, or not yet an object."""
    p = write(tmp_path / "h.jsonl", GOOD.encode() + torn)
    told: list[str] = []
    ops = read_jsonl(p, told.append)
    assert [o.index for o in ops] == [0, 1, 2, 3]
    assert len(told) == 1 and "line 5: the last line is incomplete" in told[0]
    with pytest.warns(TornLineWarning, match="line 5"):  # the default: a Python warning
        assert len(read_jsonl(p)) == 4


def test_blank_lines_are_skipped_and_line_numbers_stay_the_files(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    p = write(tmp_path / "h.jsonl", "\n".join([lines[0], "", "  ", *lines[1:]]) + "\n")
    assert [n for n, _ in read_jsonl_rows(p)] == [1, 4, 5, 6]


def harness_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "check", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_harness_check_warns_of_a_torn_line_and_still_judges(tmp_path: Path) -> None:
    p = write(tmp_path / "h.jsonl", GOOD + '{"index": 4, "process": 2, "ty')
    out = harness_check(p)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning:" in out.stderr and "line 5: the last line is incomplete" in out.stderr
    assert "verdict: valid" in out.stdout


def test_harness_check_refuses_a_bad_line_naming_it(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    p = write(tmp_path / "h.jsonl", "\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    out = harness_check(p)
    assert out.returncode == 3
    assert "h.jsonl line 2: not valid JSON" in out.stderr


def test_the_report_notes_a_torn_line_and_shows_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "history.jsonl", GOOD + '{"index": 4, "ti')
    write(tmp_path / "stats.jsonl", '{"time": 1, "node": "n1", "hints_stored": 0}\n{"ti')
    ctx = build_context(tmp_path)
    assert ctx["stats"]["ops"] == 2
    notes = "\n".join(ctx["notes"])
    assert "history.jsonl line 5: the last line is incomplete" in notes
    assert "stats.jsonl line 2: the last line is incomplete" in notes


def test_the_report_names_a_bad_line_and_leaves_that_file_out(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    write(tmp_path / "history.jsonl", "\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    ctx = build_context(tmp_path)
    assert ctx["stats"]["ops"] == 0
    assert any("history.jsonl line 2: not valid JSON" in n and "not shown" in n
               for n in ctx["notes"])


def test_the_report_names_an_unpairable_history(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    write(tmp_path / "history.jsonl", "\n".join([lines[1], *lines[2:]]) + "\n")
    ctx = build_context(tmp_path)
    assert ctx["stats"]["ops"] == 0
    assert any("line 1: process 0 completed 'write' (ok) without invoking it" in n
               for n in ctx["notes"])
