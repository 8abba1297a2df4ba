"""JUnit XML from a run's results, so CI systems show each checker as a test case.

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


def build_junit(results: dict[str, Any]) -> ET.Element:
    """The `<testsuite>` element for `results` (the results.json shape in docs/history.md)."""
    if not isinstance(results, dict):
        raise ValueError(f"results must be a JSON object, got {type(results).__name__}")
    checkers = results.get("checkers")
    if not isinstance(checkers, dict):
        raise ValueError("results has no 'checkers' object; is this a results.json?")

    suite_name = _suite_name(results)
    suite = ET.Element("testsuite", name=_clean(suite_name))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=str(results.get("verdict", "unknown")))
    test = results.get("test") if isinstance(results.get("test"), dict) else {}
    for key in sorted(test):
        value = test[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        ET.SubElement(props, "property", name=_clean(str(key)), value=_clean(text))

    failures = errors = skipped = 0
    total_time = 0.0
    for name, checker in checkers.items():
        checker = checker if isinstance(checker, dict) else {"verdict": None, "summary": ""}
        seconds = _seconds(checker)
        total_time += seconds
        case = ET.SubElement(
            suite, "testcase", name=_clean(str(name)), classname=_clean(suite_name),
            time=f"{seconds:.3f}",
        )
        verdict = checker.get("verdict")
        summary = _clean(str(checker.get("summary") or f"{name}: {verdict}"))
        if verdict == "valid":
            continue
        if verdict == "n/a":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"not applicable: {summary}")
            continue
        if verdict == "invalid":
            failures += 1
            child = ET.SubElement(case, "failure", message=summary, type="invalid")
        elif verdict == "unknown":
            errors += 1
            child = ET.SubElement(case, "error", message=summary, type="unknown")
        else:
            errors += 1
            child = ET.SubElement(
                case, "error", message=f"checker answered verdict {verdict!r}: {summary}",
                type="bad-verdict",
            )
        child.text = _detail(checker.get("evidence", {}))

    suite.set("tests", str(len(checkers)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{total_time:.3f}")
    return suite


def write_junit(results: dict[str, Any], path: Path) -> None:
    """Write `results` as a JUnit XML file at `path` (parent folders are created)."""
    suite = build_junit(results)
    ET.indent(suite)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
