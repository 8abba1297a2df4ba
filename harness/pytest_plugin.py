"""A pytest plugin (entry point `harness` in pyproject.toml): the `jepsen_run` fixture runs one
test from a store's own test suite and returns its outcome.

    def test_etcd_survives_partitions(jepsen_run):
        outcome = jepsen_run(store="etcd", workload="cas-register", nemesis="partition")
        assert outcome.valid, outcome.run_dir
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from harness.options import offered_faults
from harness.runner import RunOutcome, run_test
from harness.settings import ClusterSettings, TestSettings
from harness.stores import DEFAULT_STORE
from nemesis.schedule import parse_faults

CLUSTER_FIELDS = {f.name for f in fields(ClusterSettings)}


def settings_from(out: Path, **kw: Any) -> TestSettings:
    """TestSettings from keyword arguments: cluster settings (`nodes`, `n`...) flat, `nemesis`
    as a string ("partition,crash") or a list."""
    nemesis = kw.pop("nemesis", [])
    if isinstance(nemesis, str):
        nemesis = parse_faults(nemesis, offered_faults(kw.get("store", DEFAULT_STORE)))
    cluster = ClusterSettings(**{k: kw.pop(k) for k in list(kw) if k in CLUSTER_FIELDS})
    kw.setdefault("out", out)
    return TestSettings(nemesis=list(nemesis), cluster=cluster, **kw)


def runner(out: Path) -> Callable[..., RunOutcome]:
    """What `jepsen_run` is: run a test from keyword settings, reports under `out`."""

    def run(**kw: Any) -> RunOutcome:
        return run_test(settings_from(out, **kw), display_mode="quiet")

    return run


@pytest.fixture
def jepsen_run(tmp_path: Path) -> Callable[..., RunOutcome]:
    """Run a test (settings as keyword arguments; reports under the test's tmp_path unless
    `out` is given) and return its outcome: `.valid`, `.verdict`, `.run_dir`, `.results`."""
    return runner(tmp_path / "reports")
