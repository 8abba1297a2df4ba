"""The handoff checker: no node still holds hints after the heal and the bounded wait."""

from __future__ import annotations

from typing import Any

from checkers.handoff import check_handoff
from checkers.registry import DEFAULTS, resolve


def _doc(pending: dict[str, Any] | None, waited_ms: int = 1500) -> dict[str, Any]:
    doc: dict[str, Any] = {"heal_time": 1, "converged_time": 2, "keys": {}}
    if pending is not None:
        doc["hints"] = {"pending": pending, "drained_time": None, "waited_ms": waited_ms}
    return doc


def test_every_hint_delivered_is_valid() -> None:
    v = check_handoff(_doc({"n1": 0, "n2": 0, "n3": 0}))
    assert v.verdict == "valid", v.summary
    assert "1500 ms after the heal" in v.summary


def test_hints_still_held_are_invalid_and_named() -> None:
    v = check_handoff(_doc({"n1": 0, "n2": 22, "n3": 0, "n4": 5}, waited_ms=15000))
    assert v.verdict == "invalid"
    assert v.summary.startswith("Node n2 still holds 22 hint(s) 15000 ms after the heal")
    assert "27 hint(s) on 2 node(s)" in v.summary
    assert v.evidence["held"] == {"n2": 22, "n4": 5}


def test_a_silent_node_is_unknown_but_held_hints_still_win() -> None:
    v = check_handoff(_doc({"n1": 0, "n2": None}))
    assert v.verdict == "unknown" and v.evidence["silent"] == ["n2"]
    assert check_handoff(_doc({"n1": 3, "n2": None})).verdict == "invalid"


def test_no_hints_entry_is_not_applicable() -> None:
    assert check_handoff(None).verdict == "n/a"  # a bare history
    assert check_handoff(_doc(None)).verdict == "n/a"  # a store without hints (etcd, Redis)
    assert check_handoff({"hints": {"pending": "x"}}).verdict == "n/a"


def test_handoff_is_a_default_for_the_dynamo_workloads_only() -> None:
    for workload in ("cart", "set", "register"):
        assert "handoff" in DEFAULTS[workload]
    assert "handoff" not in DEFAULTS["cas-register"]
    assert resolve(["hints"], "cart") == ["handoff"]


def test_a_handoff_interval_longer_than_the_wait_is_not_applicable() -> None:
    doc = _doc({"n1": 4, "n2": 0}, waited_ms=6000)
    v = check_handoff(doc, interval_ms=3_600_000)  # the smoke suite's "handoff off"
    assert v.verdict == "n/a" and "every 3600000 ms" in v.summary
    assert check_handoff(doc, interval_ms=1000).verdict == "invalid"
    assert check_handoff(_doc({"n1": 0}, waited_ms=10), interval_ms=3_600_000).verdict == "valid"


def test_the_registry_reads_the_interval_from_test_json() -> None:
    from checkers.registry import CheckInput, run_checkers

    test = {"settings": {"workload": "cart",
                         "cluster": {"node_settings": {"handoff_interval_ms": 3_600_000}}}}
    inp = CheckInput([], test=test, replicas=_doc({"n1": 4}, waited_ms=6000))
    assert run_checkers(inp, ["handoff"])["checkers"]["handoff"]["verdict"] == "n/a"
    inp.test = {"settings": {"workload": "cart"}}
    assert run_checkers(inp, ["handoff"])["checkers"]["handoff"]["verdict"] == "invalid"
