"""JUnit XML, the one writer: a run's results (`harness run --junit`, `harness check --junit`:
each checker a test case) and a suite's outcomes (`harness suite --junit`: each suite test a
test case, built by `harness.suite.junit_xml` with `Cases`).

Mapping (one `testsuite`, one `testcase` per checker, in the order of `results["checkers"]`):

| checker verdict | testcase child |
|---|---|
| `valid` | none (the case passed) |
| `invalid` | `<failure type="invalid" message="<the checker's summary>">` |
| `unknown` | `<error type="unknown" message="<the checker's summary>">` |
| `n/a` | `<skipped message="not applicable: <the checker's summary>">` |
| anything else | `<error type="bad-verdict" ...>` |

`unknown` is an `error`, not `skipped`: the checker ran but could not decide (a budget ran out, the
history was unreadable), and the harness exits 2 for it, so CI must not show it as green. `n/a`
is `skipped`: the checker's input was absent (no replicas.json, no delete, ...), so it judged
nothing and does not weigh in the overall verdict. The evidence of an invalid or unknown checker
goes, as JSON, into the element's text; the overall verdict and the test settings go into
`<properties>`.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

# Evidence can be large (100k-op prefixes); CI pages choke on megabytes of text.
_MAX_DETAIL_CHARS = 20_000
_DURATION_KEYS = ("duration_s", "elapsed_s", "seconds")


def _seconds(checker: dict[str, Any]) -> float:
    """The checker's run time in seconds if it reported one, else 0."""
    for key in _DURATION_KEYS:
        value = checker.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
            return float(value)
    ms = checker.get("duration_ms", checker.get("elapsed_ms"))
    if isinstance(ms, int | float) and math.isfinite(ms) and ms >= 0:
        return ms / 1000.0
    return 0.0


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters from logs or values)."""
    return "".join(
        c for c in text if c in "\t\n\r" or ("\x20" <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
        or ("\U00010000" <= c <= "\U0010ffff")
    )


def _detail(evidence: Any) -> str:
    text = json.dumps(evidence, indent=2, sort_keys=True, default=str)
    if len(text) > _MAX_DETAIL_CHARS:
        cut = len(text) - _MAX_DETAIL_CHARS
        text = text[:_MAX_DETAIL_CHARS] + f"\n... ({cut} more characters; see results.json)"
    return _clean(text)


def _suite_name(results: dict[str, Any]) -> str:
    test = results.get("test") if isinstance(results.get("test"), dict) else {}
    name = test.get("name") or "-".join(
        str(test[k]) for k in ("workload", "nemesis") if test.get(k)
    )
    return f"harness.{name}" if name else "harness"


class Cases:
    """One `<testsuite>` (under `parent` if given): add cases, then `finish` sets its counts."""

    def __init__(self, name: str, parent: ET.Element | None = None) -> None:
        self.element = (ET.Element("testsuite", name=_clean(name)) if parent is None
                        else ET.SubElement(parent, "testsuite", name=_clean(name)))
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        self.seconds = 0.0

    def case(self, name: str, classname: str, seconds: float, outcome: str | None = None,
             message: str = "", kind: str | None = None, text: str | None = None,
             ) -> ET.Element:
        """A `<testcase>`; `outcome` None (passed), "failure", "error" or "skipped", with its
        message, its `type` attribute (`kind`) and its text."""
        self.counts["tests"] += 1
        self.seconds += seconds
        case = ET.SubElement(self.element, "testcase", name=_clean(name),
                             classname=_clean(classname), time=f"{seconds:.3f}")
        if outcome is None:
            return case
        self.counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome]] += 1
        child = ET.SubElement(case, outcome, message=_clean(message))
        if kind is not None:
            child.set("type", kind)
        if text is not None:
            child.text = _clean(text)
        return case

    def finish(self) -> ET.Element:
        for name, count in self.counts.items():
            self.element.set(name, str(count))
        self.element.set("time", f"{self.seconds:.3f}")
        return self.element


def build_junit(results: dict[str, Any]) -> ET.Element:
    """The `<testsuite>` element for `results` (the results.json shape in docs/history.md)."""
    if not isinstance(results, dict):
        raise ValueError(f"results must be a JSON object, got {type(results).__name__}")
    checkers = results.get("checkers")
    if not isinstance(checkers, dict):
        raise ValueError("results has no 'checkers' object; is this a results.json?")

    suite_name = _suite_name(results)
    cases = Cases(suite_name)
    props = ET.SubElement(cases.element, "properties")
    ET.SubElement(props, "property", name="verdict", value=str(results.get("verdict", "unknown")))
    test = results.get("test") if isinstance(results.get("test"), dict) else {}
    for key in sorted(test):
        value = test[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        ET.SubElement(props, "property", name=_clean(str(key)), value=_clean(text))

    for name, checker in checkers.items():
        checker = checker if isinstance(checker, dict) else {"verdict": None, "summary": ""}
        seconds = _seconds(checker)
        verdict = checker.get("verdict")
        summary = str(checker.get("summary") or f"{name}: {verdict}")
        detail = _detail(checker.get("evidence", {}))
        if verdict == "valid":
            cases.case(str(name), suite_name, seconds)
        elif verdict == "n/a":
            cases.case(str(name), suite_name, seconds, "skipped", f"not applicable: {summary}")
        elif verdict == "invalid":
            cases.case(str(name), suite_name, seconds, "failure", summary, "invalid", detail)
        elif verdict == "unknown":
            cases.case(str(name), suite_name, seconds, "error", summary, "unknown", detail)
        else:
            cases.case(str(name), suite_name, seconds, "error",
                       f"checker answered verdict {verdict!r}: {summary}", "bad-verdict", detail)
    return cases.finish()


def xml_text(root: ET.Element) -> str:
    """The document, indented, with its XML declaration."""
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class JunitError(OSError):
    """The XML could not be written there; the message names the path and why."""


def write_xml(root: ET.Element, path: Path) -> None:
    """Write the document at `path` in UTF-8 (parent folders are created). Raises JunitError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(xml_text(root), encoding="utf-8")
    except OSError as e:
        raise JunitError(f"cannot write the JUnit XML to {path}: {e.strerror or e}") from e


def writable_file_error(path: Path) -> str | None:
    """Why a file cannot be written at `path` (checked before a long run), or None. Makes the
    missing parent folders, as the writer would."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {path.parent}: {e.strerror or e}"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"{path.parent} is not writable"
    return None


def write_junit(results: dict[str, Any], path: Path) -> None:
    """Write `results` as a JUnit XML file at `path` (parent folders are created)."""
    write_xml(build_junit(results), path)
