"""A short run of the fuzzing campaign (benchmarks/fuzz.py) against real nodes: every HTTP
answer is a 2xx, 4xx or 503, every internode frame after a valid handshake gets a reply (or,
altered or undecodable, a hang-up), no node dies or logs an unhandled error, memory stays
bounded and the keys written before the campaign read back unchanged."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.cluster
def test_a_short_fuzzing_campaign_finds_nothing(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("fuzz", ROOT / "benchmarks" / "fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules["fuzz"] = fuzz  # its dataclasses look their module up there
    spec.loader.exec_module(fuzz)
    figures = fuzz.run(12, seed=17, workdir=tmp_path, log=False)
    assert figures["findings"] == {}, figures["findings"]
    assert figures["http_requests"] > 5 and figures["frames"] > 5, figures  # it did run
    assert max(figures["peak_rss_mib"].values()) < 300, figures
