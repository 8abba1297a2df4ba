"""A checker's answer and the rule that combines several into one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"
# A checker whose inputs are absent (no replicas.json, no read after a write, ...) judged nothing:
# it is shown as such and does not weigh in the overall verdict.
NOT_APPLICABLE = "n/a"
VERDICTS = (VALID, INVALID, UNKNOWN, NOT_APPLICABLE)
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

    @classmethod
    def not_applicable(cls, summary: str, evidence: dict[str, Any] | None = None) -> Verdict:
        """Nothing to judge: `summary` says which input was missing."""
        return cls(NOT_APPLICABLE, summary, evidence or {})

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary, "evidence": self.evidence}


def combine(verdicts: Iterable[str]) -> str:
    """invalid if any is invalid, else unknown if any is unknown, else valid (docs/history.md).
    Not-applicable verdicts are left out; no verdict at all proves nothing: unknown."""
    seen = set(verdicts) - {NOT_APPLICABLE}
    if INVALID in seen:
        return INVALID
    if UNKNOWN in seen or not seen:
        return UNKNOWN
    return VALID
