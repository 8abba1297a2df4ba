"""The Jepsen-style test harness: CLI, runner, workloads, platforms, stores, reports.

From Python: `from harness import run_test, TestSettings` and
`run_test(TestSettings(store="etcd", workload="cas-register", nemesis=["partition"]))`, which
returns the outcome (`.verdict`, `.exit_code`, `.run_dir`); check `settings.errors()` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.runner import RunOutcome, run_test
    from harness.settings import ClusterSettings, TestSettings

__all__ = ["ClusterSettings", "RunOutcome", "TestSettings", "run_test"]


def __getattr__(name: str) -> Any:
    # loaded on first use: `harness --help` and the checkers need none of it
    if name in ("run_test", "RunOutcome"):
        from harness import runner

        return getattr(runner, name)
    if name in ("TestSettings", "ClusterSettings"):
        from harness import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
