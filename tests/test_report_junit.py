"""JUnit XML from results: structure per the common JUnit schema (Ant/Jenkins junit-10.xsd)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.junit import write_junit

RESULTS = {
    "verdict": "invalid",
    "checkers": {
        "set": {"verdict": "invalid", "summary": "1 of 40 acknowledged adds was lost: 17.",
                "evidence": {"lost": [{"element": 17}], "lost_count": 1}},
        "linearizability": {"verdict": "unknown", "summary": "Undecided: budget spent.",
                            "evidence": {"reason": "time budget"}, "duration_s": 1.25},
        "perf": {"verdict": "valid", "summary": "ok", "evidence": {}},
    },
    "test": {"name": "set-partition", "seed": 7, "nemesis": ["partition"]},
}

SUITE_ATTRS = {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname",
               "id", "package", "disabled"}
SUITE_CHILDREN = {"properties", "testcase", "system-out", "system-err"}
CASE_ATTRS = {"name", "classname", "time", "assertions", "status"}
CASE_CHILDREN = {"skipped", "error", "failure", "system-out", "system-err"}


def validate(root: ET.Element) -> None:
    """The rules of the common JUnit schema that CI parsers rely on."""
    assert root.tag == "testsuite"
    assert set(root.attrib) <= SUITE_ATTRS, set(root.attrib) - SUITE_ATTRS
    assert root.get("name")
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attr, "0")) >= 0
    float(root.get("time", "0"))
    children = list(root)
    assert {c.tag for c in children} <= SUITE_CHILDREN
    tags = [c.tag for c in children]
    if "properties" in tags:  # properties come first, once
        assert tags.index("properties") == 0 and tags.count("properties") == 1
        for p in children[0]:
            assert p.tag == "property" and p.get("name") is not None and p.get("value") is not None
    cases = root.findall("testcase")
    assert int(root.get("tests")) == len(cases)
    assert int(root.get("failures")) == len(root.findall("testcase/failure"))
    assert int(root.get("errors")) == len(root.findall("testcase/error"))
    assert int(root.get("skipped")) == len(root.findall("testcase/skipped"))
    for case in cases:
        assert set(case.attrib) <= CASE_ATTRS
        assert case.get("name") and case.get("classname")
        assert float(case.get("time")) >= 0
        kids = list(case)
        assert {k.tag for k in kids} <= CASE_CHILDREN
        assert len([k for k in kids if k.tag in ("failure", "error", "skipped")]) <= 1
        for k in kids:
            assert len(list(k)) == 0  # text only
            if k.tag in ("failure", "error"):
                assert k.get("message") and k.get("type")


def test_one_case_per_checker_and_verdict_mapping(tmp_path: Path) -> None:
    out = tmp_path / "ci" / "junit.xml"
    write_junit(RESULTS, out)
    root = ET.parse(out).getroot()
    validate(root)
    assert root.get("name") == "harness.set-partition"
    cases = {c.get("name"): c for c in root.findall("testcase")}
    assert list(cases) == ["set", "linearizability", "perf"]
    failure = cases["set"].find("failure")
    assert failure is not None and failure.get("message") == RESULTS["checkers"]["set"]["summary"]
    assert '"lost_count": 1' in failure.text
    error = cases["linearizability"].find("error")
    assert error is not None and error.get("type") == "unknown"
    assert error.get("message") == "Undecided: budget spent."
    assert cases["linearizability"].get("time") == "1.250"
    assert list(cases["perf"]) == []
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["verdict"] == "invalid" and props["seed"] == "7"
    assert props["nemesis"] == '["partition"]'
    assert out.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_all_valid_has_no_failures(tmp_path: Path) -> None:
    results = {"verdict": "valid", "checkers": {"a": {"verdict": "valid", "summary": "fine"},
                                                "b": {"verdict": "valid", "summary": "fine"}}}
    write_junit(results, tmp_path / "j.xml")
    root = ET.parse(tmp_path / "j.xml").getroot()
    validate(root)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
    assert root.get("name") == "harness"


def test_control_characters_and_huge_evidence_stay_valid_xml(tmp_path: Path) -> None:
    results = {"verdict": "invalid", "checkers": {"x\x01": {
        "verdict": "invalid", "summary": "bad \x00value\x1b",
        "evidence": {"blob": "y" * 100_000}}}}
    write_junit(results, tmp_path / "j.xml")
    root = ET.parse(tmp_path / "j.xml").getroot()  # parses: no illegal characters left
    validate(root)
    failure = root.find("testcase/failure")
    assert failure.get("message") == "bad value"
    assert len(failure.text) < 25_000 and "see results.json" in failure.text


def test_unrecognised_verdict_is_an_error(tmp_path: Path) -> None:
    write_junit({"checkers": {"c": {"verdict": "maybe", "summary": "?"}}}, tmp_path / "j.xml")
    err = ET.parse(tmp_path / "j.xml").getroot().find("testcase/error")
    assert err.get("type") == "bad-verdict" and "'maybe'" in err.get("message")


@pytest.mark.parametrize("bad", [[], {"verdict": "valid"}, {"checkers": []}])
def test_bad_input_is_refused_clearly(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="checkers|JSON object"):
        write_junit(bad, tmp_path / "j.xml")  # type: ignore[arg-type]
    assert not (tmp_path / "j.xml").exists()


def test_not_applicable_is_a_skipped_case_with_the_reason(tmp_path: Path) -> None:
    results = {"verdict": "valid", "checkers": {
        "perf": {"verdict": "valid", "summary": "fine"},
        "convergence": {"verdict": "n/a", "summary": "There is no replicas.json.",
                        "evidence": {"reason": "no replicas.json"}}}}
    write_junit(results, tmp_path / "j.xml")
    root = ET.parse(tmp_path / "j.xml").getroot()
    validate(root)
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("0", "0", "1")
    skipped = root.find("testcase[@name='convergence']/skipped")
    assert skipped is not None
    assert skipped.get("message") == "not applicable: There is no replicas.json."
