"""Test suites: a TOML list of `harness run`s, each with the verdict expected from each checker.

A suite is how the harness proves its checkers: a run against a store with a seeded bug must be
found `invalid` by the checker that is meant to catch it, and the correct store must be `valid`.

```toml
[suite]                    # optional
name = "smoke"

[defaults]                 # optional; any run setting below, for every test
platform = "local"
time_limit = 15

[[test]]
name = "lww-loses-cart-items"          # letters, digits, '.', '_', '-'; unique
workload = "cart"
nemesis = "partition"                  # or a list: ["partition", "crash"]
bugs = ["lww"]
node_settings = { read_repair = false }
expect = { set = "invalid" }           # checker -> verdict, or a list of acceptable verdicts
```

Run settings (in `[defaults]` or a test): the `harness run` flags (`workload`, `nemesis`,
`platform`, `time_limit`, `concurrency`, `rate`, `keys`, `nemesis_interval`, `seed`,
`quiesce_timeout`, `nodes`, `n`, `r`, `w`, `q`, `sloppy`, `request_timeout_ms`, `fsync`), `bugs`,
`node_settings` (merged key by key with the defaults' table), and `timeout` (seconds of wall time
before the run is interrupted). A test also takes `description`. Only the checkers named in
`expect` are compared.

Everything here but `run_one` is a pure function of its arguments.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.registry import ALIASES, CHECKERS, DEFAULTS
from harness.settings import ClusterSettings, TestSettings, node_settings_errors
from nemesis.schedule import parse_faults

VERDICTS = ("valid", "invalid", "unknown")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FLAG = re.compile(r"--([a-z][a-z-]*)")
HARNESS = [sys.executable, "-m", "harness"]
INTERRUPT_GRACE_S = 60.0  # after SIGINT the run heals, tears down, checks and reports

# setting -> (accepted types, what the message calls them)
_NUM = (int, float)
RUN_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "workload": ((str,), "a string"),
    "nemesis": ((str, list), "a string or a list of strings"),
    "platform": ((str,), "a string"),
    "time_limit": (_NUM, "a number"),
    "concurrency": ((int,), "an integer"),
    "rate": (_NUM, "a number"),
    "keys": ((int,), "an integer"),
    "nemesis_interval": (_NUM, "a number"),
    "seed": ((int,), "an integer"),
    "quiesce_timeout": (_NUM, "a number"),
    "nodes": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "r": ((int,), "an integer"),
    "w": ((int,), "an integer"),
    "q": ((int,), "an integer"),
    "sloppy": ((bool,), "true or false"),
    "request_timeout_ms": ((int,), "an integer"),
    "fsync": ((str,), "a string"),
    "bugs": ((list,), "a list of bug names"),
    "node_settings": ((dict,), "a table"),
    "timeout": (_NUM, "a number"),
}
TEST_KEYS = ("name", "description", "expect")
CLUSTER_KEYS = ("nodes", "n", "r", "w", "q", "sloppy", "request_timeout_ms", "fsync")
# the flags `harness run` takes for the plain settings, in the order they are written
FLAGS = ("workload", "nemesis", "platform", "time_limit", "concurrency", "rate", "keys",
         "nemesis_interval", "seed", "quiesce_timeout", *CLUSTER_KEYS)


class SuiteError(ValueError):
    """The suite file is wrong; the message names the file, the test and the setting."""


@dataclass(frozen=True)
class SuiteTest:
    name: str
    settings: dict[str, Any]  # every run setting, defaults applied (see RUN_KEYS)
    expect: dict[str, tuple[str, ...]]  # canonical checker name -> acceptable verdicts
    description: str = ""

    @property
    def bugs(self) -> list[str]:
        return list(self.settings.get("bugs", []))

    @property
    def timeout(self) -> float:
        s = self.settings
        return float(s.get("timeout", _setting(s, "time_limit") + _setting(s, "quiesce_timeout")
                           + 120))


@dataclass(frozen=True)
class Suite:
    name: str
    tests: list[SuiteTest]
    description: str = ""


@dataclass
class Outcome:
    """What one suite test did: its run, the verdicts, and how they compare with `expect`."""

    test: SuiteTest
    exit_code: int | None = None
    run_dir: Path | None = None
    actual: dict[str, str] = field(default_factory=dict)  # checker -> verdict
    mismatches: list[str] = field(default_factory=list)  # checkers whose verdict was unexpected
    error: str | None = None  # the run itself failed (harness error, timeout)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.test.name, "passed": self.passed, "exit_code": self.exit_code,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "expect": {k: list(v) for k, v in self.test.expect.items()},
            "actual": self.actual, "mismatches": self.mismatches, "error": self.error,
            "seconds": round(self.seconds, 3), "bugs": self.test.bugs,
        }


# -- loading -------------------------------------------------------------------------------------


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file; SuiteError says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{path}: cannot read the suite file: {e}") from e
    return parse_suite(text, str(path), default_name=path.stem)


def parse_suite(text: str, source: str = "<suite>", default_name: str = "suite") -> Suite:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{source}: not valid TOML: {e}") from e
    unknown = sorted(set(doc) - {"suite", "defaults", "test"})
    if unknown:
        raise SuiteError(f"{source}: unknown top-level entry {', '.join(unknown)} "
                         "(expected [suite], [defaults] and [[test]])")
    meta = doc.get("suite", {})
    if not isinstance(meta, dict) or set(meta) - {"name", "description"}:
        raise SuiteError(f"{source}: [suite] takes only name and description")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SuiteError(f"{source}: [defaults] must be a table")
    bad = sorted(set(defaults) - set(RUN_KEYS))
    if bad:
        raise SuiteError(f"{source}: [defaults]: unknown setting {', '.join(bad)} "
                         f"(known: {', '.join(RUN_KEYS)})")
    raw_tests = doc.get("test")
    if not isinstance(raw_tests, list) or not raw_tests:
        raise SuiteError(f"{source}: no tests; add at least one [[test]] table")
    tests: list[SuiteTest] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_tests):
        test = _parse_test(raw, defaults, f"{source}: [[test]] #{i + 1}")
        if test.name in seen:
            raise SuiteError(f"{source}: two tests are named {test.name!r}")
        seen.add(test.name)
        tests.append(test)
    return Suite(str(meta.get("name", default_name)), tests, str(meta.get("description", "")))


def _parse_test(raw: Any, defaults: dict[str, Any], where: str) -> SuiteTest:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SuiteError(f"{where}: name must be letters, digits, '.', '_' or '-' "
                         f"(got {name!r})")
    where = f"{where.rsplit(': ', 1)[0]}: test {name!r}"
    bad = sorted(set(raw) - set(RUN_KEYS) - set(TEST_KEYS))
    if bad:
        raise SuiteError(f"{where}: unknown setting {', '.join(bad)} "
                         f"(known: {', '.join([*TEST_KEYS, *RUN_KEYS])})")
    settings = {**defaults, **{k: v for k, v in raw.items() if k in RUN_KEYS}}
    if isinstance(defaults.get("node_settings"), dict) and isinstance(raw.get("node_settings"),
                                                                      dict):
        # a test adds to (or overrides keys of) the default node settings
        settings["node_settings"] = {**defaults["node_settings"], **raw["node_settings"]}
    for key, value in settings.items():
        types, what = RUN_KEYS[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise SuiteError(f"{where}: {key} must be {what} (got {value!r})")
    errors = settings_errors(settings)
    if errors:
        raise SuiteError(f"{where}: {'; '.join(errors)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(f"{where}: description must be a string")
    workload = str(settings.get("workload", TestSettings.workload))
    return SuiteTest(name, settings, parse_expect(raw.get("expect"), workload, where),
                     description)


def settings_errors(settings: dict[str, Any]) -> list[str]:
    """What is wrong with a test's run settings, checked as `harness run` would check them."""
    errs: list[str] = []
    nemesis = settings.get("nemesis", "none")
    if isinstance(nemesis, list):
        if not nemesis or not all(isinstance(x, str) for x in nemesis):
            errs.append("nemesis must be a non-empty list of fault names")
            nemesis = "none"
        else:
            nemesis = ",".join(nemesis)
    try:
        faults = parse_faults(nemesis)
    except ValueError as e:
        errs.append(f"nemesis: {e}")
        faults = []
    bugs = settings.get("bugs", [])
    if not all(isinstance(b, str) for b in bugs):
        errs.append(f"bugs must be a list of strings (got {bugs!r})")
        bugs = []
    node_settings = settings.get("node_settings", {})
    errs += [e.replace("--node-setting ", "node_settings.")
             for e in node_settings_errors(node_settings)]
    cluster = ClusterSettings(**{k: settings[k] for k in CLUSTER_KEYS if k in settings},
                              bugs=list(bugs))
    plain = ("workload", "platform", "time_limit", "concurrency", "rate", "keys",
             "nemesis_interval", "seed", "quiesce_timeout")
    test = TestSettings(nemesis=faults, cluster=cluster,
                        **{k: settings[k] for k in plain if k in settings})
    # the messages name `harness run` flags; here they are suite settings
    errs += [FLAG.sub(lambda m: m.group(1).replace("-", "_"), e) for e in test.errors()]
    if "timeout" in settings and settings["timeout"] <= 0:
        errs.append(f"timeout must be positive (got {settings['timeout']})")
    return errs


def parse_expect(raw: Any, workload: str, where: str) -> dict[str, tuple[str, ...]]:
    """`{checker: verdict or [verdicts]}` with checker aliases resolved; each checker must be one
    the workload runs."""
    if not isinstance(raw, dict) or not raw:
        raise SuiteError(f"{where}: expect must be a table of checker = verdict, e.g. "
                         f'expect = {{ set = "valid" }}')
    runs = DEFAULTS.get(workload, DEFAULTS["generic"])
    out: dict[str, tuple[str, ...]] = {}
    for checker, verdict in raw.items():
        canon = ALIASES.get(checker, checker)
        if canon not in CHECKERS:
            raise SuiteError(f"{where}: expect names unknown checker {checker!r} "
                             f"(checkers: {', '.join(CHECKERS)})")
        if canon not in runs:
            raise SuiteError(f"{where}: expect names checker {checker!r}, which the {workload} "
                             f"workload does not run (it runs: {', '.join(runs)})")
        verdicts = verdict if isinstance(verdict, list) else [verdict]
        if not verdicts or not all(v in VERDICTS for v in verdicts):
            raise SuiteError(f"{where}: expect.{checker} must be one of {', '.join(VERDICTS)} "
                             f"or a list of them (got {verdict!r})")
        out[canon] = tuple(dict.fromkeys(verdicts))
    return out


def _setting(settings: dict[str, Any], key: str) -> float:
    defaults = TestSettings()
    return float(settings.get(key, getattr(defaults, key)))


def select(suite: Suite, only: list[str]) -> list[SuiteTest]:
    """The tests named (shell-style patterns allowed); SuiteError if a name matches none."""
    if not only:
        return list(suite.tests)
    from fnmatch import fnmatchcase

    missing = [p for p in only if not any(fnmatchcase(t.name, p) for t in suite.tests)]
    if missing:
        raise SuiteError(f"no test matches {', '.join(missing)}; the tests are "
                         f"{', '.join(t.name for t in suite.tests)}")
    return [t for t in suite.tests if any(fnmatchcase(t.name, p) for p in only)]


# -- running -------------------------------------------------------------------------------------


def run_args(test: SuiteTest, out: Path, seed: int | None = None) -> list[str]:
    """The `harness run` arguments for a test, writing under `out` (pure)."""
    s = dict(test.settings)
    if seed is not None:
        s["seed"] = seed
    args = ["run"]
    for key in FLAGS:
        if key not in s:
            continue
        value = s[key]
        if key == "sloppy":
            args.append("--sloppy" if value else "--strict")
            continue
        if key == "nemesis" and isinstance(value, list):
            value = ",".join(value)
        args += [f"--{key.replace('_', '-')}", str(value)]
    for bug in s.get("bugs", []):
        args += ["--bug", bug]
    for key, value in sorted(s.get("node_settings", {}).items()):
        shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
        args += ["--node-setting", f"{key}={shown}"]
    args += ["--out", str(out), "--display", "lines"]
    return args


def compare(expect: dict[str, tuple[str, ...]], results: dict[str, Any] | None
            ) -> tuple[dict[str, str], list[str]]:
    """(actual verdict per expected checker, the checkers whose verdict was not expected)."""
    checkers = (results or {}).get("checkers", {})
    actual: dict[str, str] = {}
    for name in expect:
        entry = checkers.get(name)
        actual[name] = entry.get("verdict", "missing") if isinstance(entry, dict) else "missing"
    return actual, [n for n, ok in expect.items() if actual[n] not in ok]


def run_one(test: SuiteTest, out: Path, seed: int | None = None) -> Outcome:
    """Run a test as a `harness run` subprocess (a crash there cannot take the suite down), its
    output in `out/<test>/harness-run.log`; compare the verdicts with the expectation."""
    test_out = out / test.name
    test_out.mkdir(parents=True, exist_ok=True)
    log_path = test_out / "harness-run.log"
    outcome = Outcome(test)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        args = run_args(test, test_out, seed)
        log.write("$ harness " + " ".join(args) + "\n")
        log.flush()
        proc = subprocess.Popen(HARNESS + args, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            outcome.exit_code = proc.wait(timeout=test.timeout)
        except subprocess.TimeoutExpired:
            outcome.error = f"the run took longer than its timeout of {test.timeout:.0f} s"
            # SIGINT lets the run heal its faults and stop its nodes
            proc.send_signal(signal.SIGINT)
            try:
                outcome.exit_code = proc.wait(timeout=INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                outcome.exit_code = proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=INTERRUPT_GRACE_S)
            if proc.poll() is None:
                proc.kill()
            raise
    outcome.seconds = time.monotonic() - started
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    outcome.run_dir = find_run_dir(log_text, test_out)
    results = read_results(outcome.run_dir)
    outcome.actual, outcome.mismatches = compare(test.expect, results)
    if outcome.error is None and (results is None or outcome.exit_code == 3):
        outcome.error = harness_error(outcome.run_dir, log_text, outcome.exit_code)
    return outcome


def find_run_dir(log_text: str, test_out: Path) -> Path | None:
    """The run directory `harness run` printed, else `<out>/latest`."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("run directory: "):
            return Path(line.removeprefix("run directory: ").strip())
    latest = test_out / "latest"
    return latest.resolve() if latest.exists() else None


def read_results(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def harness_error(run_dir: Path | None, log_text: str, exit_code: int | None) -> str:
    """Why a run produced no usable verdicts: test.json's error, else the log's last lines."""
    if run_dir is not None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            error = json.loads((run_dir / "test.json").read_text(encoding="utf-8")).get("error")
            if error:
                return f"harness failed (exit {exit_code}): {error}"
    tail = " | ".join(line for line in log_text.splitlines()[-4:] if line.strip())
    return f"harness failed (exit {exit_code}): {tail or 'no output'}"


# -- reporting -----------------------------------------------------------------------------------


def junit_xml(suite: Suite, outcomes: list[Outcome]) -> str:
    """One testsuite, one testcase per suite test; a failure names the mismatched checkers."""
    failures = sum(1 for o in outcomes if o.error is None and o.mismatches)
    errors = sum(1 for o in outcomes if o.error is not None)
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite.name, tests=str(len(outcomes)),
                       failures=str(failures), errors=str(errors),
                       time=f"{sum(o.seconds for o in outcomes):.3f}")
    for o in outcomes:
        case = ET.SubElement(ts, "testcase", classname=f"suite.{suite.name}", name=o.test.name,
                             time=f"{o.seconds:.3f}")
        detail = "\n".join(f"{c}: expected {' or '.join(o.test.expect[c])}, got {o.actual[c]}"
                           for c in o.test.expect)
        if o.error is not None:
            el = ET.SubElement(case, "error", type="harness", message=o.error)
            el.text = detail
        elif o.mismatches:
            el = ET.SubElement(case, "failure", type="unexpected-verdict",
                               message=mismatch_message(o))
            el.text = detail
        out = ET.SubElement(case, "system-out")
        out.text = f"run directory: {o.run_dir}\n{detail}\n"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def mismatch_message(o: Outcome) -> str:
    return "; ".join(f"{c} expected {' or '.join(o.test.expect[c])} but was {o.actual[c]}"
                     for c in o.mismatches)


def summary_json(suite: Suite, outcomes: list[Outcome]) -> dict[str, Any]:
    return {"suite": suite.name, "passed": all(o.passed for o in outcomes),
            "tests": [o.to_json() for o in outcomes]}
