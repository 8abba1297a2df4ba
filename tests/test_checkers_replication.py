"""The replication checker: every key that holds a value is on N distinct nodes."""

from __future__ import annotations

from typing import Any

import pytest

from checkers.replication import check_replication


def _rep(*ids: str, tombstone: bool = False, ok: bool = True) -> dict[str, Any]:
    return {"ok": ok, "versions": [{"id": i, "tombstone": tombstone} for i in ids]}


def _doc(**keys: dict[str, Any]) -> dict[str, Any]:
    return {"heal_time": 1, "converged_time": 2, "keys": keys}


def test_three_copies_are_valid_even_when_they_diverge() -> None:
    doc = _doc(k={"preference_list": ["n1", "n2", "n3"],
                  "replicas": {"n1": _rep("a:1"), "n2": _rep("a:1"), "n3": _rep("a:2")}})
    v = check_replication(doc, 3)
    assert v.verdict == "valid", v.summary
    assert v.evidence["keys_checked"] == 1


def test_a_preference_list_naming_a_node_twice_is_short() -> None:
    doc = _doc(k={"preference_list": ["n4", "n5", "n4"],
                  "replicas": {"n4": _rep("a:1"), "n5": _rep("a:1")}},
               j={"preference_list": ["n1", "n2", "n3"],
                  "replicas": {"n1": _rep("b:1"), "n2": _rep("b:1"), "n3": _rep("b:1")}})
    v = check_replication(doc, 3)
    assert v.verdict == "invalid"
    assert "names only 2 distinct nodes" in v.summary
    assert v.evidence["short"] == {"k": {"holders": ["n4", "n5"],
                                         "preference_list": ["n4", "n5", "n4"], "missing": []}}


def test_a_replica_without_the_key_is_named() -> None:
    doc = _doc(k={"preference_list": ["n1", "n2", "n3"],
                  "replicas": {"n1": _rep("a:1"), "n2": _rep("a:1"), "n3": _rep()}})
    v = check_replication(doc, 3)
    assert v.verdict == "invalid" and "n3 lacks it" in v.summary
    assert check_replication(doc, 2).verdict == "valid"


def test_deleted_and_unwritten_keys_are_skipped() -> None:
    doc = _doc(gone={"preference_list": ["n1", "n2", "n3"],
                     "replicas": {"n1": _rep("a:1", tombstone=True), "n2": _rep(), "n3": _rep()}},
               never={"preference_list": ["n1", "n2", "n3"],
                      "replicas": {"n1": _rep(), "n2": _rep(), "n3": _rep()}})
    assert check_replication(doc, 3).verdict == "n/a"


def test_a_replica_not_asked_makes_a_short_key_unknown() -> None:
    doc = _doc(k={"preference_list": ["n1", "n2", "n3"],
                  "replicas": {"n1": _rep("a:1"), "n2": _rep("a:1"),
                               "n3": {"ok": False, "error": "timeout"}}})
    v = check_replication(doc, 3)
    assert v.verdict == "unknown"
    assert v.evidence["unknown"]["k"]["not_asked"] == ["n3"]


def test_no_replicas_file_is_not_applicable_and_a_bad_one_is_refused() -> None:
    assert check_replication(None, 3).verdict == "n/a"
    with pytest.raises(ValueError, match="'keys' object"):
        check_replication({"keys": []}, 3)


def test_without_a_stated_n_the_longest_preference_list_stands_for_it() -> None:
    two = _doc(k={"preference_list": ["n1", "n2"],
                  "replicas": {"n1": _rep("a:1"), "n2": _rep("a:1")}})
    assert check_replication(two, None).verdict == "valid"
    dup = _doc(k={"preference_list": ["n4", "n5", "n4"],
                  "replicas": {"n4": _rep("a:1"), "n5": _rep("a:1")}})
    assert check_replication(dup, None).verdict == "invalid"
