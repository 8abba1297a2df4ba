"""A checker's answer and the rule that combines several into one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"
VERDICTS = (VALID, INVALID, UNKNOWN)
EXIT_CODES = {VALID: 0, INVALID: 1, UNKNOWN: 2}


@dataclass
class Verdict:
    """`verdict` is valid|invalid|unknown; `summary` one plain sentence; `evidence` JSON-able."""

    verdict: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary, "evidence": self.evidence}


def combine(verdicts: Iterable[str]) -> str:
    """invalid if any is invalid, else unknown if any is unknown, else valid (docs/history.md).
    No verdicts at all proves nothing: unknown."""
    seen = set(verdicts)
    if INVALID in seen:
        return INVALID
    if UNKNOWN in seen or not seen:
        return UNKNOWN
    return VALID
