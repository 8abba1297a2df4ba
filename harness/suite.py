"""Test suites: a TOML list of `harness run`s, each with the verdict expected from each checker.

A suite is how the harness proves its checkers: a run against a store with a seeded bug must be
found `invalid` by the checker that is meant to catch it, the same run without the bug must not
be, and the correct store must be `valid`.

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
# control = false                      # opt out of the control run (see below) ...
# control_reason = "..."               # ... only with a reason, which the output shows
```

Run settings (in `[defaults]` or a test): the `harness run` flags (`workload`, `nemesis`,
`platform`, `store`, `store_options` (a list), `time_limit`, `concurrency`, `rate`, `keys`,
`ops_per_key`, `nemesis_interval`, `nemesis_jitter`, `partitions`, `seed`,
`quiesce_timeout`, `nodes`, `n`, `r`, `w`, `q`, `sloppy`, `request_timeout_ms`, `fsync`), `bugs`,
`node_settings` (merged key by key with the defaults' table; the defaults' `node_settings` and
`bugs` are left out of a test whose store takes none, as etcd), and `timeout` (seconds of wall
time before the run is interrupted). A test also takes `description`. A test without `nemesis`
runs without faults (`harness run`'s own default is `mix`).

Judging (`judge`): a test passes when every checker named in `expect` gave one of its expected
verdicts (`valid`, `invalid`, `unknown`, `n/a`) and, for a test without `bugs`, no checker at
all said `invalid` (the correct store is never invalid, so such a test may not expect it). Store
options count as bugs here (they loosen a guarantee; the control drops them), and so does an
`fsync` policy weaker than `always` (the control runs with `always`); a test of an outside store
may name a published anomaly (`anomaly = "..."`) to expect `invalid` without either.

Controls (`expand`): every test with `bugs` is followed by `<name>-control`, the same settings
without the bugs, which must be valid: every checker `valid` or `n/a`, none `invalid` or
`unknown`. Without it an `invalid` verdict might come from the settings (a fault the store does
not promise to survive, a checker that misjudges them), not from the bug. `control = false` with
a `control_reason` opts a test out; the suite prints the reason.

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
from checkers.verdict import INVALID, NOT_APPLICABLE, VALID, combine
from checkers.verdict import VERDICTS as CHECKER_VERDICTS
from harness.junit import Cases, xml_text
from harness.options import offered_faults
from harness.settings import ClusterSettings, TestSettings, node_settings_errors
from harness.stores import DEFAULT_STORE, STORES
from nemesis.schedule import parse_faults

VERDICTS = CHECKER_VERDICTS  # what `expect` may name
CONTROL_SUFFIX = "-control"
CONTROL_OK = (VALID, NOT_APPLICABLE)  # what every checker of a control run may answer
OVERALL = "overall verdict"  # the mismatch named when no single checker is to blame
SUMMARY_CHARS = 300  # of a checker's summary quoted in a failure
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
    "store": ((str,), "a string"),
    "store_options": ((list,), "a list of store option names"),
    "time_limit": (_NUM, "a number"),
    "concurrency": ((int,), "an integer"),
    "rate": (_NUM, "a number"),
    "keys": ((int,), "an integer"),
    "ops_per_key": ((int,), "an integer"),
    "nemesis_interval": (_NUM, "a number"),
    "nemesis_jitter": (_NUM, "a number"),
    "partitions": ((str, list), "a string or a list of strings"),
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
TEST_KEYS = ("name", "description", "expect", "control", "control_reason", "anomaly")
CLUSTER_KEYS = ("nodes", "n", "r", "w", "q", "sloppy", "request_timeout_ms", "fsync")
# the flags `harness run` takes for the plain settings, in the order they are written
FLAGS = ("workload", "nemesis", "platform", "store", "time_limit", "concurrency", "rate", "keys",
         "ops_per_key", "nemesis_interval", "nemesis_jitter", "partitions", "seed",
         "quiesce_timeout", *CLUSTER_KEYS)


class SuiteError(ValueError):
    """The suite file is wrong; the message names the file, the test and the setting."""


@dataclass(frozen=True)
class SuiteTest:
    name: str
    settings: dict[str, Any]  # every run setting, defaults applied (see RUN_KEYS)
    expect: dict[str, tuple[str, ...]]  # canonical checker name -> acceptable verdicts
    description: str = ""
    control: bool = True  # a test with bugs gets a control run (`expand`) unless opted out
    control_reason: str = ""  # why not: required with control = false
    control_of: str | None = None  # set on a control run: the name of the bug test it controls
    anomaly: str = ""  # a published anomaly of an outside store: why it may be found invalid

    @property
    def bugs(self) -> list[str]:
        return list(self.settings.get("bugs", []))

    @property
    def store_options(self) -> list[str]:
        return list(self.settings.get("store_options", []))

    @property
    def weakened(self) -> list[str]:
        """What makes this test's store other than correct: seeded bugs, and store options
        (which loosen a guarantee, as etcd's serializable-reads); judged as bugs are."""
        return [*self.bugs, *(f"store option {o}" for o in self.store_options),
                *weak_fsync(self.settings)]

    @property
    def is_control(self) -> bool:
        return self.control_of is not None

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
    actual: dict[str, str] = field(default_factory=dict)  # expected checker -> verdict
    mismatches: list[str] = field(default_factory=list)  # checkers that failed the test
    error: str | None = None  # the run itself failed (harness error, timeout)
    seconds: float = 0.0
    verdicts: dict[str, str] = field(default_factory=dict)  # every checker that ran -> verdict
    failures: list[str] = field(default_factory=list)  # why, one sentence per mismatch

    @property
    def passed(self) -> bool:
        return self.error is None and not self.mismatches

    def to_json(self) -> dict[str, Any]:
        t = self.test
        return {
            "name": t.name, "passed": self.passed, "exit_code": self.exit_code,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "expect": {k: list(v) for k, v in t.expect.items()},
            "actual": self.actual, "mismatches": self.mismatches, "failures": self.failures,
            "verdicts": self.verdicts, "error": self.error,
            "seconds": round(self.seconds, 3), "bugs": t.bugs, "control_of": t.control_of,
            **({"store_options": t.store_options} if t.store_options else {}),
            **({"control": False, "control_reason": t.control_reason}
               if t.weakened and not t.control else {}),
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
    for test in tests:
        control = test.name + CONTROL_SUFFIX
        if test.weakened and test.control and control in seen:
            raise SuiteError(f"{source}: test {test.name!r} seeds bugs, so the suite runs its "
                             f"control {control!r}, but another test has that name; rename it")
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
    store = STORES.get(str(settings.get("store", DEFAULT_STORE)))
    if store is not None and not store.takes_node_settings:
        # the defaults' node settings and bugs configure the reference node, not this store
        for key in ("node_settings", "bugs"):
            if key not in raw:
                settings.pop(key, None)
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
    expect = parse_expect(raw.get("expect"), workload, where)
    weakened = (settings.get("bugs", []) or settings.get("store_options", [])
                or weak_fsync(settings))
    anomaly = raw.get("anomaly", "")
    if not isinstance(anomaly, str):
        raise SuiteError(f"{where}: anomaly must be a string (got {anomaly!r})")
    if anomaly and str(settings.get("store", DEFAULT_STORE)) == DEFAULT_STORE:
        raise SuiteError(f"{where}: anomaly is for an outside store's published anomaly; the "
                         "reference store's defects are seeded with bugs = [...]")
    if not weakened and not anomaly:
        invalid = [c for c, vs in expect.items() if INVALID in vs]
        if invalid:
            raise SuiteError(f"{where}: expect.{invalid[0]} allows invalid, but the test seeds no "
                             "bug and the correct store must never be invalid; seed one with "
                             "bugs = [...] (or loosen it with store_options = [...] or an fsync "
                             "policy other than always; an outside "
                             'store\'s published anomaly says so with anomaly = "...")')
    control, reason = _parse_control(raw, bool(weakened), where)
    return SuiteTest(name, settings, expect, description, control, reason, anomaly=anomaly.strip())


def _parse_control(raw: dict[str, Any], has_bugs: bool, where: str) -> tuple[bool, str]:
    """(control, control_reason): opting out of the control run must say why."""
    control = raw.get("control", True)
    reason = raw.get("control_reason")
    if not isinstance(control, bool):
        raise SuiteError(f"{where}: control must be true or false (got {control!r})")
    if reason is not None and not isinstance(reason, str):
        raise SuiteError(f"{where}: control_reason must be a string (got {reason!r})")
    if control:
        if reason is not None:
            raise SuiteError(f"{where}: control_reason is only for control = false")
        return True, ""
    if not has_bugs:
        raise SuiteError(f"{where}: control = false is only for a test with bugs (a test "
                         "without bugs has no control run)")
    if not reason or not reason.strip():
        raise SuiteError(f'{where}: control = false needs control_reason = "...": why the same '
                         "settings without the bugs cannot be expected valid")
    return False, reason.strip()


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
        faults = parse_faults(nemesis, offered_faults(settings.get("store", DEFAULT_STORE)))
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
    options = settings.get("store_options", [])
    if not all(isinstance(o, str) for o in options):
        errs.append(f"store_options must be a list of strings (got {options!r})")
        options = []
    plain = ("workload", "platform", "store", "time_limit", "concurrency", "rate", "keys",
             "ops_per_key", "nemesis_interval", "nemesis_jitter", "seed", "quiesce_timeout")
    shapes = settings.get("partitions", [])
    test = TestSettings(nemesis=faults, cluster=cluster, store_options=list(options),
                        partitions=[shapes] if isinstance(shapes, str) else list(shapes),
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


def weak_fsync(settings: dict[str, Any]) -> list[str]:
    """An fsync policy weaker than `always` (acknowledged before durable), as a weakening."""
    fsync = settings.get("fsync", ClusterSettings.fsync)
    return [] if fsync == ClusterSettings.fsync else [f"fsync {fsync}"]


def control_test(test: SuiteTest) -> SuiteTest:
    """`<name>-control`: the test's settings without its bugs and store options, every checker
    valid or n/a."""
    settings = {k: v for k, v in test.settings.items()
                if k not in ("bugs", "store_options", "fsync")}  # fsync: always, the default
    return SuiteTest(
        test.name + CONTROL_SUFFIX, settings, {c: CONTROL_OK for c in test.expect},
        f"control for {test.name}: the same settings without {', '.join(test.weakened)}; "
        "every checker must be valid or n/a", control_of=test.name)


def expand(suite: Suite) -> Suite:
    """The suite's runnable tests: each test with bugs followed by its control (unless it opted
    out). Select from the result (`select(expand(suite), only)`) to pick controls by name.
    Expanding an expanded suite changes nothing."""
    present = {t.name for t in suite.tests}
    tests: list[SuiteTest] = []
    for t in suite.tests:
        tests.append(t)
        if t.weakened and t.control and t.name + CONTROL_SUFFIX not in present:
            tests.append(control_test(t))
    return Suite(suite.name, tests, suite.description)


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
    s.setdefault("nemesis", "none")  # a suite test without faults says so; `run`'s default is mix
    for key in FLAGS:
        if key not in s:
            continue
        value = s[key]
        if key == "sloppy":
            args.append("--sloppy" if value else "--strict")
            continue
        if key in ("nemesis", "partitions") and isinstance(value, list):
            value = ",".join(value)
        args += [f"--{key.replace('_', '-')}", str(value)]
    for bug in s.get("bugs", []):
        args += ["--bug", bug]
    for option in s.get("store_options", []):
        args += ["--store-option", option]
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


@dataclass(frozen=True)
class Judgement:
    actual: dict[str, str]  # verdict of each checker named in expect ("missing" if absent)
    verdicts: dict[str, str]  # verdict of every checker that ran
    mismatches: list[str]  # the checkers that fail the test
    failures: list[str]  # one sentence per mismatch (or about the whole verdict)

    @property
    def passed(self) -> bool:
        return not self.mismatches


def judge(test: SuiteTest, results: dict[str, Any] | None) -> Judgement:
    """Judge a run's results.json against the test (pure): every expected checker must match;
    without bugs no checker may be invalid; a control's checkers must all be valid or n/a."""
    actual, mismatches = compare(test.expect, results)
    failures = [f"{c} expected {' or '.join(test.expect[c])} but was {actual[c]}"
                for c in mismatches]
    checkers = (results or {}).get("checkers")
    entries = {n: e for n, e in checkers.items() if isinstance(e, dict)} \
        if isinstance(checkers, dict) else {}
    verdicts = {n: str(e.get("verdict", "missing")) for n, e in entries.items()}
    if not test.weakened and not test.anomaly:
        allowed = CONTROL_OK if test.is_control else tuple(v for v in VERDICTS if v != INVALID)
        for name, verdict in verdicts.items():
            if name in mismatches or verdict in allowed:
                continue
            mismatches.append(name)
            summary = str(entries[name].get("summary") or "").strip()
            if len(summary) > SUMMARY_CHARS:  # a linearizability story can run for pages
                summary = summary[:SUMMARY_CHARS] + "..."
            if test.is_control:
                why = (f"{name} was {verdict} without the bugs of {test.control_of}, so its "
                       "settings alone may explain that test's verdict")
            else:
                why = f"{name} was {verdict} on the correct store (the test seeds no bug)"
            failures.append(f"{why}: {summary}" if summary else why)
        if test.is_control and results is not None and not mismatches \
                and combine(verdicts.values()) != VALID:
            # every checker n/a: the control judged nothing, so it proves nothing either
            mismatches.append(OVERALL)
            failures.append("no checker judged anything (every one was n/a), so the control "
                            "shows nothing")
    return Judgement(actual, verdicts, mismatches, failures)


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
    j = judge(test, results)
    outcome.actual, outcome.verdicts = j.actual, j.verdicts
    outcome.mismatches, outcome.failures = j.mismatches, j.failures
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
    """One testsuite, one testcase per suite test (controls included); a failure names the
    checkers that failed the test. Written by the one JUnit writer, `harness.junit`."""
    root = ET.Element("testsuites")
    cases = Cases(suite.name, root)
    for o in outcomes:
        detail = "\n".join([*(f"{c}: expected {' or '.join(o.test.expect[c])}, got "
                              f"{o.actual.get(c, 'missing')}" for c in o.test.expect),
                            *unexpected_failures(o), *note(o.test)])
        if o.error is not None:
            outcome = ("error", o.error, "harness", detail)
        elif o.mismatches:
            outcome = ("failure", mismatch_message(o), "unexpected-verdict", detail)
        else:
            outcome = (None, "", None, None)
        case = cases.case(o.test.name, f"suite.{suite.name}", o.seconds, *outcome)
        out = ET.SubElement(case, "system-out")
        out.text = f"run directory: {o.run_dir}\n{detail}\n"
    cases.finish()
    return xml_text(root)


def mismatch_message(o: Outcome) -> str:
    if o.failures:
        return "; ".join(o.failures)
    return "; ".join(f"{c} expected {' or '.join(o.test.expect[c])} but was "
                     f"{o.actual.get(c, 'missing')}" if c in o.test.expect else f"{c} failed"
                     for c in o.mismatches)


def unexpected_failures(o: Outcome) -> list[str]:
    """The failures of checkers that `expect` does not name (judge keeps them aligned)."""
    return [f for c, f in zip(o.mismatches, o.failures, strict=False) if c not in o.test.expect]


def note(test: SuiteTest) -> list[str]:
    """What a test's output says about its control: whose control it is, or why it has none."""
    if test.is_control:
        return [f"control of {test.control_of}: the same settings without its bugs"]
    if test.weakened and not test.control:
        return [f"no control run: {test.control_reason}"]
    return []


def summary_json(suite: Suite, outcomes: list[Outcome]) -> dict[str, Any]:
    return {"suite": suite.name, "passed": all(o.passed for o in outcomes),
            "tests": [o.to_json() for o in outcomes]}
