"""Suite files: validation, the `harness run` arguments, comparison and JUnit (no processes)."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.settings import ClusterSettings, parse_node_setting
from harness.suite import (
    Outcome,
    SuiteError,
    compare,
    junit_xml,
    load_suite,
    parse_suite,
    run_args,
    select,
)

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[suite]
name = "demo"

[defaults]
time_limit = 5
nodes = 5

[[test]]
name = "lww-cart"
workload = "cart"
nemesis = ["partition", "crash"]
bugs = ["lww"]
node_settings = { read_repair = false, aae_interval_ms = 500 }
expect = { sets = "invalid", convergence = ["valid", "unknown"] }

[[test]]
name = "register-strict"
workload = "register"
sloppy = false
time_limit = 7.5
expect = { ryw = "valid" }
"""


def test_good_suite_applies_defaults_and_resolves_aliases() -> None:
    suite = parse_suite(GOOD)
    assert suite.name == "demo"
    lww, reg = suite.tests
    assert lww.settings["time_limit"] == 5 and reg.settings["time_limit"] == 7.5
    assert lww.expect == {"set": ("invalid",), "convergence": ("valid", "unknown")}
    assert reg.expect == {"read-your-writes": ("valid",)}
    assert lww.bugs == ["lww"] and reg.bugs == []
    assert lww.timeout == 5 + 15 + 120  # time limit + default quiesce + margin


def test_run_args_carry_every_setting() -> None:
    lww, reg = parse_suite(GOOD).tests
    args = run_args(lww, Path("/tmp/x"), seed=7)
    assert args[0] == "run"
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--workload"] == "cart"
    assert pairs["--nemesis"] == "partition,crash"
    assert pairs["--seed"] == "7"
    assert pairs["--out"] == "/tmp/x"
    assert args[args.index("--bug") + 1] == "lww"
    settings = [args[i + 1] for i, a in enumerate(args) if a == "--node-setting"]
    assert settings == ["aae_interval_ms=500", "read_repair=false"]
    assert "--strict" in run_args(reg, Path("o"))
    # what the suite writes, `harness run` parses back to the same values
    assert dict(map(parse_node_setting, settings)) == {"aae_interval_ms": 500,
                                                       "read_repair": False}


@pytest.mark.parametrize("text, words", [
    ("", ["no tests"]),
    ("[[test]]\nname = 'a'\nworkload = 'cart'\n", ["'a'", "expect must be a table"]),
    ("[[test]]\nname = 'a'\nexpect = { set = 'fine' }\n", ["expect.set", "valid, invalid"]),
    ("[[test]]\nname = 'a'\nexpect = { nosuch = 'valid' }\n", ["unknown checker", "nosuch"]),
    ("[[test]]\nname = 'a'\nworkload = 'register'\nexpect = { set = 'valid' }\n",
     ["register workload does not run", "set"]),
    ("[[test]]\nname = 'a'\nexpect = { set = 'valid' }\n[[test]]\nname = 'a'\n"
     "expect = { set = 'valid' }\n", ["two tests", "'a'"]),
    ("[[test]]\nname = 'a'\nnemesis = 'earthquake'\nexpect = { set = 'valid' }\n",
     ["'a'", "earthquake"]),
    ("[[test]]\nname = 'a'\nn = 3\nr = 4\nexpect = { set = 'valid' }\n", ["'a'", "r must be"]),
    ("[[test]]\nname = 'a'\ntime_limit = 'soon'\nexpect = { set = 'valid' }\n",
     ["time_limit must be a number", "'soon'"]),
    ("[[test]]\nname = 'a'\nsloppy = 1\nexpect = { set = 'valid' }\n", ["sloppy must be true"]),
    ("[[test]]\nname = 'a'\ncolour = 'red'\nexpect = { set = 'valid' }\n",
     ["unknown setting colour"]),
    ("[[test]]\nname = 'a'\nnode_settings = { n = 5 }\nexpect = { set = 'valid' }\n",
     ["node_settings.n", "--n"]),
    ("[[test]]\nname = 'a'\nbugs = ['Not A Name']\nexpect = { set = 'valid' }\n",
     ["bug 'Not A Name'"]),
    ("[[test]]\nname = 'has space'\nexpect = { set = 'valid' }\n", ["name must be"]),
    ("[defaults]\nspeed = 3\n[[test]]\nname = 'a'\nexpect = { set = 'valid' }\n",
     ["[defaults]", "speed"]),
    ("[tests]\nname = 'a'\n", ["unknown top-level entry tests"]),
    ("[[test]\n", ["not valid TOML"]),
])
def test_bad_suites_say_what_is_wrong(text: str, words: list[str]) -> None:
    with pytest.raises(SuiteError) as e:
        parse_suite(text, "s.toml")
    assert str(e.value).startswith("s.toml")
    for word in words:
        assert word in str(e.value)


def test_missing_file_is_a_suite_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite(tmp_path / "nope.toml")


def test_compare_names_only_mismatched_checkers() -> None:
    expect = {"set": ("invalid",), "convergence": ("valid", "unknown"), "perf": ("valid",)}
    results = {"checkers": {"set": {"verdict": "valid"}, "convergence": {"verdict": "unknown"}}}
    actual, mismatches = compare(expect, results)
    assert actual == {"set": "valid", "convergence": "unknown", "perf": "missing"}
    assert mismatches == ["set", "perf"]
    assert compare({"set": ("valid",)}, None) == ({"set": "missing"}, ["set"])


def test_select_by_name_and_pattern() -> None:
    suite = parse_suite(GOOD)
    assert [t.name for t in select(suite, ["lww-*"])] == ["lww-cart"]
    assert len(select(suite, [])) == 2
    with pytest.raises(SuiteError, match="no test matches nope"):
        select(suite, ["nope"])


def test_junit_has_one_case_per_test_and_names_the_mismatch() -> None:
    suite = parse_suite(GOOD)
    lww, reg = suite.tests
    bad = Outcome(lww, exit_code=0, actual={"set": "valid", "convergence": "valid"},
                  mismatches=["set"], seconds=3.5)
    broken = Outcome(reg, exit_code=3, actual={"read-your-writes": "missing"},
                     mismatches=["read-your-writes"], error="harness failed (exit 3): boom")
    root = ET.fromstring(junit_xml(suite, [bad, broken]).split("\n", 1)[1])
    ts = root.find("testsuite")
    assert ts is not None and ts.get("tests") == "2"
    assert ts.get("failures") == "1" and ts.get("errors") == "1"
    cases = ts.findall("testcase")
    assert [c.get("name") for c in cases] == ["lww-cart", "register-strict"]
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "set expected invalid but was valid"
    error = cases[1].find("error")
    assert error is not None and "boom" in (error.get("message") or "")


def test_bug_and_node_setting_reach_the_cluster_file_lines() -> None:
    c = ClusterSettings(bugs=["lww", "aae-noop", "lww"],
                        node_settings={"read_repair": False, "aae_interval_ms": 250,
                                       "resolution": "lww"})
    doc = tomllib.loads("\n".join(c.extra_toml_lines()))
    assert doc == {"bugs": ["lww", "aae-noop"], "read_repair": False, "aae_interval_ms": 250,
                   "resolution": "lww"}
    assert c.errors() == []


@pytest.mark.parametrize("text, message", [
    ("novalue", "not KEY=VALUE"), ("=3", "not KEY=VALUE"), ("fsync=none", "--fsync"),
    ("bad-key=1", "letters, digits"),
])
def test_bad_node_settings(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node_setting(text)


def test_node_setting_types() -> None:
    assert parse_node_setting("a=true") == ("a", True)
    assert parse_node_setting("a=12") == ("a", 12)
    assert parse_node_setting("a=0.5") == ("a", 0.5)
    assert parse_node_setting("a = some text") == ("a", "some text")


@pytest.mark.parametrize("name", ["smoke.toml", "full.toml", "power.toml"])
def test_shipped_suites_are_valid(name: str) -> None:
    suite = load_suite(ROOT / "suites" / name)
    assert suite.tests
    for t in suite.tests:
        assert t.expect, t.name
