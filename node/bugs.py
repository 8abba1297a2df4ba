"""Seeded defects (issue 8), chosen with `bugs = [...]` in the cluster file or `--bug NAME`.

None exist yet: every name is rejected until issue 8 adds entries here (name -> what it breaks).
"""

from __future__ import annotations

KNOWN_BUGS: dict[str, str] = {}
