"""Suite judging (the whole verdict, not only `expect`) and the control runs of bug tests: pure
functions fed with results dicts, no processes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.suite import (
    Outcome,
    SuiteError,
    expand,
    judge,
    junit_xml,
    load_suite,
    parse_suite,
    run_args,
    select,
    summary_json,
)

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
[defaults]
time_limit = 5
seed = 9

[[test]]
name = "cart-partition"
workload = "cart"
nemesis = "partition"
expect = { set = "valid", convergence = "valid" }

[[test]]
name = "bug-lww"
workload = "cart"
nemesis = "partition"
bugs = ["lww"]
node_settings = { read_repair = false }
expect = { set = "invalid" }
"""


def results(**verdicts: str) -> dict[str, Any]:
    return {"checkers": {name.replace("_", "-"): {"verdict": v, "summary": f"{name} says {v}."}
                         for name, v in verdicts.items()}}


def by_name(text: str = SUITE) -> dict[str, Any]:
    return {t.name: t for t in expand(parse_suite(text)).tests}


# -- judging the whole verdict -------------------------------------------------------------------


def test_correct_store_fails_when_a_checker_outside_expect_is_invalid() -> None:
    t = by_name()["cart-partition"]
    j = judge(t, results(set="valid", convergence="valid", read_your_writes="invalid",
                         perf="valid"))
    assert not j.passed and j.mismatches == ["read-your-writes"]
    assert j.actual == {"set": "valid", "convergence": "valid"}  # the expected ones
    assert j.verdicts["read-your-writes"] == "invalid"
    assert "read-your-writes was invalid on the correct store" in j.failures[0]
    assert "read_your_writes says invalid." in j.failures[0]  # the checker's summary


def test_correct_store_may_be_unknown_or_not_applicable_outside_expect() -> None:
    t = by_name()["cart-partition"]
    assert judge(t, results(set="valid", convergence="valid", read_your_writes="n/a",
                            perf="unknown")).passed


def test_bug_test_judges_only_its_expectation() -> None:
    t = by_name()["bug-lww"]
    assert judge(t, results(set="invalid", convergence="invalid", perf="valid")).passed
    j = judge(t, results(set="valid", convergence="invalid"))
    assert j.mismatches == ["set"] and j.failures == ["set expected invalid but was valid"]


def test_missing_results_fail_the_expected_checkers() -> None:
    j = judge(by_name()["cart-partition"], None)
    assert j.mismatches == ["set", "convergence"] and j.verdicts == {}


def test_a_test_without_bugs_cannot_expect_invalid() -> None:
    with pytest.raises(SuiteError, match="seeds no bug"):
        parse_suite("[[test]]\nname = 'a'\nexpect = { set = ['valid', 'invalid'] }\n", "s.toml")


def test_expect_may_name_not_applicable() -> None:
    t = parse_suite("[[test]]\nname = 'a'\nworkload = 'register'\n"
                    "expect = { deletes = 'n/a' }\n").tests[0]
    assert t.expect == {"deletes": ("n/a",)}
    assert judge(t, results(deletes="n/a")).passed


# -- controls ------------------------------------------------------------------------------------


def test_every_bug_test_gets_a_control_right_after_it() -> None:
    suite = expand(parse_suite(SUITE))
    assert [t.name for t in suite.tests] == ["cart-partition", "bug-lww", "bug-lww-control"]
    bug, control = suite.tests[1], suite.tests[2]
    assert control.is_control and control.control_of == "bug-lww" and control.bugs == []
    assert control.settings == {k: v for k, v in bug.settings.items() if k != "bugs"}
    assert control.expect == {"set": ("valid", "n/a")}
    args = run_args(control, Path("o"))
    assert "--bug" not in args and "read_repair=false" in args and "9" in args  # same seed
    assert expand(suite).tests == suite.tests  # expanding twice adds nothing


def test_controls_are_selected_by_name() -> None:
    suite = expand(parse_suite(SUITE))
    assert [t.name for t in select(suite, ["bug-lww-control"])] == ["bug-lww-control"]
    assert [t.name for t in select(suite, ["bug-lww*"])] == ["bug-lww", "bug-lww-control"]
    assert [t.name for t in select(suite, ["*-control"])] == ["bug-lww-control"]
    with pytest.raises(SuiteError, match="bug-lww-control"):  # the list names the controls
        select(suite, ["nope"])


@pytest.mark.parametrize("verdicts, offender", [
    ({"set": "valid", "convergence": "invalid", "perf": "valid"}, "convergence"),
    ({"set": "valid", "convergence": "unknown", "perf": "valid"}, "convergence"),
    ({"set": "invalid", "perf": "valid"}, "set"),
])
def test_control_must_be_valid_or_not_applicable(verdicts: dict[str, str], offender: str) -> None:
    control = by_name()["bug-lww-control"]
    j = judge(control, results(**verdicts))
    assert not j.passed and j.mismatches == [offender]
    if offender != "set":
        assert f"{offender} was {verdicts[offender]} without the bugs of bug-lww" in j.failures[0]


def test_control_passes_valid_or_not_applicable_but_not_all_not_applicable() -> None:
    control = by_name()["bug-lww-control"]
    assert judge(control, results(set="valid", convergence="n/a", perf="valid")).passed
    j = judge(control, results(set="n/a", convergence="n/a"))
    assert not j.passed and "every one was n/a" in j.failures[0]


def test_control_opt_out_needs_a_reason_and_is_shown() -> None:
    base = ("[[test]]\nname = 'b'\nbugs = ['lww']\nexpect = { set = 'invalid' }\n")
    with pytest.raises(SuiteError, match="control = false needs control_reason"):
        parse_suite(base + "control = false\n", "s.toml")
    with pytest.raises(SuiteError, match="control = false needs control_reason"):
        parse_suite(base + "control = false\ncontrol_reason = '  '\n", "s.toml")
    with pytest.raises(SuiteError, match="control_reason is only for control = false"):
        parse_suite(base + "control_reason = 'why'\n", "s.toml")
    with pytest.raises(SuiteError, match="control must be true or false"):
        parse_suite(base + "control = 'no'\n", "s.toml")
    with pytest.raises(SuiteError, match="only for a test with bugs"):
        parse_suite("[[test]]\nname = 'a'\nexpect = { set = 'valid' }\ncontrol = false\n"
                    "control_reason = 'x'\n", "s.toml")
    suite = expand(parse_suite(base + "control = false\ncontrol_reason = 'the fault alone "
                               "loses writes'\n"))
    assert [t.name for t in suite.tests] == ["b"]
    o = Outcome(suite.tests[0], exit_code=1, actual={"set": "invalid"})
    entry = summary_json(suite, [o])["tests"][0]
    assert entry["control"] is False
    assert entry["control_reason"] == "the fault alone loses writes"
    assert "no control run: the fault alone loses writes" in junit_xml(suite, [o])


def test_a_control_name_may_not_clash_with_a_test() -> None:
    with pytest.raises(SuiteError, match="control 'b-control'"):
        parse_suite("[[test]]\nname = 'b'\nbugs = ['lww']\nexpect = { set = 'invalid' }\n"
                    "[[test]]\nname = 'b-control'\nexpect = { set = 'valid' }\n", "s.toml")


def test_junit_reports_controls_and_names_the_offending_checker() -> None:
    suite = expand(parse_suite(SUITE))
    correct, bug, control = suite.tests
    outcomes = []
    for t, r in ((correct, results(set="valid", convergence="valid", phantoms="invalid")),
                 (bug, results(set="invalid")),
                 (control, results(set="valid", convergence="invalid"))):
        j = judge(t, r)
        outcomes.append(Outcome(t, exit_code=0, actual=j.actual, mismatches=j.mismatches,
                                verdicts=j.verdicts, failures=j.failures))
    root = ET.fromstring(junit_xml(suite, outcomes).split("\n", 1)[1])
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == ["cart-partition", "bug-lww", "bug-lww-control"]
    assert cases["bug-lww"].find("failure") is None
    msg = cases["cart-partition"].find("failure").get("message")
    assert msg.startswith("phantoms was invalid on the correct store")
    failure = cases["bug-lww-control"].find("failure")
    assert failure.get("message").startswith("convergence was invalid without the bugs of bug-lww")
    assert "control of bug-lww" in (failure.text or "")
    summary = summary_json(suite, outcomes)
    assert summary["passed"] is False
    assert summary["tests"][2]["control_of"] == "bug-lww"
    assert summary["tests"][0]["verdicts"]["phantoms"] == "invalid"


@pytest.mark.parametrize("name", ["smoke.toml", "full.toml"])
def test_shipped_suites_get_a_control_per_bug_test(name: str) -> None:
    suite = load_suite(ROOT / "suites" / name)
    expanded = expand(suite).tests
    bug_tests = [t for t in suite.tests if t.bugs]
    assert bug_tests and all(t.control for t in bug_tests)  # no opt-out in the shipped suites
    names = {t.name for t in expanded}
    assert all(t.name + "-control" in names for t in bug_tests)
    assert len(expanded) == len(suite.tests) + len(bug_tests)


def test_table_shows_offending_checkers_controls_and_opt_outs() -> None:
    from rich.console import Console

    from harness.suite_cmd import table

    suite = expand(parse_suite(SUITE + "[[test]]\nname = 'x'\nbugs = ['lww']\n"
                               "expect = { set = 'invalid' }\ncontrol = false\n"
                               "control_reason = 'see [notes]'\n"))
    verdicts = [results(set="valid", convergence="valid", phantoms="invalid"),
                results(set="invalid"), results(set="n/a", perf="n/a"), results(set="invalid")]
    outcomes = []
    for t, r in zip(suite.tests, verdicts, strict=True):
        j = judge(t, r)
        outcomes.append(Outcome(t, 0, actual=j.actual, mismatches=j.mismatches,
                                verdicts=j.verdicts, failures=j.failures))
    console = Console(record=True, width=200)
    console.print(table(outcomes))
    text = console.export_text()
    assert any("phantoms" in line and "not invalid" in line and "MISMATCH" in line
               for line in text.splitlines())
    assert "none (control of bug-lww)" in text
    assert any("overall verdict" in line and "unknown" in line for line in text.splitlines())
    assert any("no control" in line and "see [notes]" in line for line in text.splitlines())


def test_a_weaker_fsync_is_judged_as_a_bug_with_an_fsync_always_control() -> None:
    text = """
[[test]]
name = "power-none"
workload = "set"
nemesis = "power"
fsync = "none"
expect = { set = "invalid" }
"""
    tests = by_name(text)
    weak, control = tests["power-none"], tests["power-none-control"]
    assert weak.weakened == ["fsync none"]
    assert "fsync" not in control.settings and not control.weakened
    assert "--fsync" not in run_args(control, Path("o"))
    assert judge(weak, results(set="invalid")).passed
    assert not judge(control, results(set="invalid")).passed
    always = text.replace('fsync = "none"', 'fsync = "always"')
    with pytest.raises(SuiteError, match="fsync policy other than always"):
        parse_suite(always)
