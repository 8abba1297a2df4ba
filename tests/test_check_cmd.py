"""`harness check` as a user runs it: a real process on real files, judged by exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from checkers.generate import corrupt_one_read, generate
from checkers.history import Op, from_events
from harness.checking import check_run, exit_code


def harness(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "check", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )


def write_history(path: Path, ops: list[Op]) -> Path:
    path.write_text("".join(json.dumps(o.to_dict()) + "\n" for o in ops))
    return path


def cart_run(tmp_path: Path, final: list[Any]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    ops = from_events([
        (0, "invoke", "add", "a"), (0, "ok", "add", "a", {"clock": {"n1": 1}}),
        (1, "invoke", "add", "b"), (1, "ok", "add", "b", {"clock": {"n2": 1}}),
        (0, "invoke", "read", None),
        (0, "ok", "read", ["a", "b"], {"clock": {"n1": 1, "n2": 1}, "siblings": 1}),
        (5, "invoke", "read", None, {"final": True}),
        (5, "ok", "read", final, {"final": True, "siblings": 1}),
    ], key="cart-0")
    write_history(run / "history.jsonl", ops)
    (run / "test.json").write_text(json.dumps({
        "workload": "cart", "nemesis": ["partition"],
        "cluster": {"n": 3, "r": 2, "w": 2, "sloppy": False}}))
    versions = [{"id": "n1:1", "value": ["a", "b"], "tombstone": False}]
    (run / "replicas.json").write_text(json.dumps({
        "heal_time": 1000, "converged_time": 5000, "keys": {"cart-0": {
            "preference_list": ["n1", "n2", "n3"],
            "replicas": {n: {"ok": True, "clock": {}, "versions": versions}
                         for n in ("n1", "n2", "n3")}}}}))
    return run


def test_valid_run_dir_exits_0_and_writes_results(tmp_path: Path) -> None:
    run = cart_run(tmp_path, ["a", "b"])
    out = harness(run)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: valid" in out.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["verdict"] == "valid"
    assert set(results["checkers"]) == {"set", "read-your-writes", "convergence", "replication",
                                        "handoff", "perf"}
    assert results["test"]["workload"] == "cart"
    for r in results["checkers"].values():
        assert r["verdict"] in ("valid", "invalid", "unknown", "n/a") and r["summary"]
    assert results["checkers"]["convergence"]["evidence"]["converged_after_ms"] == 0.004


def test_lost_write_exits_1_and_check_run_agrees(tmp_path: Path) -> None:
    run = cart_run(tmp_path, ["b"])
    out = harness(run, "--json")
    assert out.returncode == 1
    printed = json.loads(out.stdout)
    assert printed["checkers"]["set"]["evidence"]["lost"][0]["element"] == "a"
    results = check_run(run)
    assert exit_code(results) == 1 and results["verdict"] == "invalid"
    assert json.loads((run / "results.json").read_text())["verdict"] == "invalid"
    # one more checker by hand: its entry is added, the defaults' entries and verdict stay
    out = harness(run, "--checker", "linearizable")
    assert out.returncode == 1 and "misses {'a'}" in out.stdout  # the lost add, seen as a set
    stored = json.loads((run / "results.json").read_text())
    assert set(stored["checkers"]) == {"set", "read-your-writes", "convergence", "replication",
                                       "handoff", "perf", "linearizable"}
    assert stored["verdict"] == "invalid"


def test_bare_histories_jsonl_and_edn(tmp_path: Path) -> None:
    ops = generate("cas-register", 300, 5, info_rate=0.05, seed=3)
    good = write_history(tmp_path / "good.jsonl", ops)
    bad_ops = corrupt_one_read(ops, 1)
    assert bad_ops is not None
    bad = write_history(tmp_path / "bad.jsonl", bad_ops)
    assert harness(good).returncode == 0  # cas ops: linearizable with cas-register by default
    out = harness(bad, "--checker", "linearizable")
    assert out.returncode == 1 and "Let P be" in out.stdout
    assert not (tmp_path / "results.json").exists()  # a bare history writes nothing
    edn = tmp_path / "history.edn"
    lines = []
    for o in ops:
        v = "nil" if o.value is None else json.dumps(o.value).replace(",", " ")
        lines.append(f"{{:process {o.process} :type :{o.type} :f :{o.f} :value {v} "
                     f":time {o.time}}}")
    edn.write_text("[" + "\n".join(lines) + "]\n")
    out = harness(edn, "--model", "cas-register", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["checkers"]["linearizable"]["verdict"] == "valid"


def test_budget_exhausted_exits_2(tmp_path: Path) -> None:
    ops = generate("cas-register", 1000, 40, info_rate=0.05, seed=1)
    h = write_history(tmp_path / "hard.jsonl", ops)
    out = harness(h, "--checker", "linearizable", "--time-limit", "0.05")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "time budget" in out.stdout


def test_unreadable_input_exits_3_naming_the_line(tmp_path: Path) -> None:
    h = tmp_path / "h.jsonl"
    h.write_text('{"process": 0, "type": "invoke", "f": "read", "value": null}\n'
                 '{"process": 0, "type": "ok", "f": "read", "value": [1]}\n'
                 'not json\n{"process": 1, "type": "invoke", "f": "read", "value": null}\n')
    out = harness(h)
    assert out.returncode == 3 and "line 3" in out.stderr
    edn = tmp_path / "h.edn"
    edn.write_text("{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type\n")
    out = harness(edn)
    assert out.returncode == 3 and "line 2" in out.stderr
    assert harness(tmp_path / "missing").returncode == 3
    (tmp_path / "empty_run").mkdir()
    out = harness(tmp_path / "empty_run")
    assert out.returncode == 3 and "history.jsonl" in out.stderr


def test_usage_errors_exit_3(tmp_path: Path) -> None:
    h = write_history(tmp_path / "h.jsonl", generate("register", 10, 2))
    out = harness(h, "--checker", "bogus")
    assert out.returncode == 3 and "unknown checker" in out.stderr
    assert harness(h, "--model", "queue").returncode == 3


def test_junit_output(tmp_path: Path) -> None:
    run = cart_run(tmp_path, ["b"])
    xml = tmp_path / "out" / "junit.xml"
    out = harness(run, "--junit", xml)
    assert out.returncode == 1
    text = xml.read_text()
    assert "<testsuite" in text and 'type="invalid"' in text


STALE_READ = [(0, "invoke", "write", 1), (0, "ok", "write", 1),
              (0, "invoke", "write", 2), (0, "ok", "write", 2),
              (1, "invoke", "read", None), (1, "ok", "read", 1)]


def test_model_alone_checks_linearizability_only(tmp_path: Path) -> None:
    # the register workload's defaults would all be n/a or valid here: --model must check
    # linearizability, and the read of 1 after write 2 was acknowledged is not linearizable
    h = write_history(tmp_path / "h.jsonl", from_events(STALE_READ, key="x"))
    out = harness(h, "--model", "register")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "INVALID  linearizable" in out.stdout and "verdict: invalid" in out.stdout
    printed = json.loads(harness(h, "--model", "register", "--json").stdout)
    assert set(printed["checkers"]) == {"linearizable"} and printed["model"] == "register"
    # with --checker named too, linearizable is added to them
    both = json.loads(harness(h, "--model", "register", "--checker", "perf", "--json").stdout)
    assert set(both["checkers"]) == {"perf", "linearizable"} and both["verdict"] == "invalid"


def test_bare_history_without_replicas_shows_convergence_not_applicable(tmp_path: Path) -> None:
    h = write_history(tmp_path / "h.jsonl", from_events(STALE_READ[:4] + [
        (1, "invoke", "read", None), (1, "ok", "read", [2])], key="x"))
    out = harness(h, "--checker", "convergence", "--checker", "phantoms")
    assert out.returncode == 0, out.stdout + out.stderr  # not unknown because of convergence
    assert "N/A      convergence: There is no replicas.json" in out.stdout
    printed = json.loads(harness(h, "--json").stdout)
    assert printed["checkers"]["convergence"]["verdict"] == "n/a"
    assert printed["verdict"] == "valid"
    xml = tmp_path / "junit.xml"
    assert harness(h, "--junit", xml).returncode == 0
    text = xml.read_text()
    assert '<skipped message="not applicable: There is no replicas.json' in text


# a jepsen.independent register history, as Jepsen writes it (reads of unknown value are nil)
INDEPENDENT_EDN = """[{:type :invoke, :f :write, :value [3 5], :process 0}
{:type :ok, :f :write, :value [3 5], :process 0}
{:type :invoke, :f :read, :value [3 nil], :process 1}
{:type :ok, :f :read, :value [3 5], :process 1}
{:type :invoke, :f :write, :value [4 1], :process 0}
{:type :ok, :f :write, :value [4 1], :process 0}
{:type :invoke, :f :read, :value [4 nil], :process 1}
{:type :ok, :f :read, :value [4 nil], :process 1}]
"""


def test_jepsen_independent_edn_is_split_and_nil_reads_are_unknown(tmp_path: Path) -> None:
    h = tmp_path / "history.edn"
    h.write_text(INDEPENDENT_EDN)
    out = harness(h, "--model", "register")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "independent: split into 2 keys (auto-detected" in out.stdout
    assert "reads of nil unknown (the default for EDN input)" in out.stdout
    printed = json.loads(harness(h, "--model", "register", "--json").stdout)
    assert printed["independent"]["split"] is True and printed["independent"]["keys"] == 2
    assert printed["semantics"]["nil_reads"] == "unknown"
    assert set(printed["checkers"]["linearizable"]["evidence"]["keys"]) == {"3", "4"}
    # read as one register of pairs it is not linearizable; nil read as absent neither
    out = harness(h, "--model", "register", "--no-independent")
    assert out.returncode == 1 and "independent: not split (--no-independent)" in out.stdout
    out = harness(h, "--model", "register", "--nil-reads", "absent")
    assert out.returncode == 1 and "reads of nil absent (--nil-reads)" in out.stdout
    # kv values are lists: a pair is a value, never auto-split
    kv = tmp_path / "kv.edn"
    kv.write_text(INDEPENDENT_EDN.replace(":write", ":put").replace(":read", ":get"))
    printed = json.loads(harness(kv, "--model", "kv", "--json").stdout)
    assert printed["independent"]["split"] is False
    assert harness(kv, "--model", "kv", "--independent").returncode == 0


def test_initial_failed_cas_and_bad_flags(tmp_path: Path) -> None:
    h = write_history(tmp_path / "h.jsonl", from_events([
        (0, "invoke", "cas", [0, 1]), (0, "ok", "cas", [0, 1]),
        (1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2]),
        (0, "invoke", "read", None), (0, "ok", "read", 1)], key="x"))
    assert harness(h, "--model", "cas-register").returncode == 1  # absent is not 0
    out = harness(h, "--model", "cas-register", "--initial", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "initial value 0" in out.stdout and "failed cas ignore" in out.stdout
    out = harness(h, "--model", "cas-register", "--initial", "0", "--failed-cas", "observe")
    assert out.returncode == 1 and "failed cas 1 -> 2 must have seen" in out.stdout
    out = harness(h, "--model", "cas-register", "--initial", "zero")
    assert out.returncode == 3 and "not valid JSON" in out.stderr
    out = harness(h, "--model", "set", "--initial", "0")
    assert out.returncode == 3 and "initial value must be a list" in out.stderr
    assert harness(h, "--nil-reads", "maybe").returncode == 3
