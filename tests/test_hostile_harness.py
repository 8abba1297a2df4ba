"""The harness's hostile-input findings of issue 17: a harness failure exits 3 (never 1, which
means "invalid") without a traceback, nonsense numbers are refused, `suite --dry-run` refuses
what the node would, `cleanup` marks a killed run, and a big history is read a line at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checking import load_input, stream_history
from harness.junit import JunitError, write_junit
from harness.report.synthetic import make_run

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness"]


def harness(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HARNESS_STATE_DIR=str(cwd / "state"))
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def test_check_of_a_deeply_nested_value_exits_3(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "h.jsonl").write_text(
        f'{{"process": 0, "type": "invoke", "f": "put", "key": "k", "value": {deep}, '
        '"time": 1, "index": 0}\n')
    p = harness(["check", "h.jsonl"], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "nested too deeply" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("flags,why", [
    (["--rate", "nan"], "--rate must be a finite number"),
    (["--rate", "inf"], "--rate must be a finite number"),
    (["--time-limit", "nan"], "--time-limit must be a finite number"),
    (["--time-limit", "inf"], "--time-limit must be a finite number"),
    (["--out", "/proc/x"], "cannot create /proc/x"),
    (["--out", "afile/under"], "Not a directory"),
    (["--junit", "/proc/x/j.xml"], "cannot create /proc/x"),
    (["--junit", "afile/j.xml"], "cannot create afile"),
])
def test_run_refuses_before_starting(tmp_path: Path, flags: list[str], why: str) -> None:
    (tmp_path / "afile").write_text("a regular file\n")
    p = harness(["run", "--time-limit", "1", *flags], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr
    assert why in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "reports").exists()  # nothing started


def test_suite_refuses_an_impossible_out(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text("[[test]]\nname = 't'\nworkload = 'set'\nnemesis = 'none'\n"
                     "time_limit = 1\nexpect = { set = 'valid' }\n")
    for out in ("/proc/x", "s.toml/under"):
        p = harness(["suite", str(suite), "--out", out], tmp_path)
        assert p.returncode == 3 and "--out" in p.stderr and "Traceback" not in p.stderr


def test_check_keeps_the_verdict_when_junit_cannot_be_written(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", 200, seed=4)
    p = harness(["check", str(run), "--checker", "perf", "--junit", "/proc/x/j.xml"], tmp_path)
    assert p.returncode == 3
    assert "verdict: valid" in p.stdout and "cannot write the JUnit XML" in p.stderr
    with pytest.raises(JunitError):
        write_junit({"checkers": {}, "verdict": "valid"}, Path("/proc/x/j.xml"))


def test_suite_dry_run_refuses_node_settings_the_node_refuses(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    body = ("[[test]]\nname = 't'\nworkload = 'set'\nnemesis = 'none'\ntime_limit = 1\n"
            "expect = { set = 'valid' }\nnode_settings = { %s }\n")
    suite.write_text(body % "no_such_setting = 3")
    p = harness(["suite", str(suite), "--dry-run"], tmp_path)
    assert p.returncode == 3 and "unknown setting(s): no_such_setting" in p.stderr, p.stderr
    suite.write_text(body % "aae_interval_ms = 500")
    p = harness(["suite", str(suite), "--dry-run"], tmp_path)
    assert p.returncode == 0, p.stderr


def test_cleanup_marks_a_killed_runs_test_json(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    from harness.cleanup_cmd import cleanup_sessions
    from harness.state import Session, process_identity

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "test.json").write_text(json.dumps({"name": "t", "status": "running"}))
    (tmp_path / "state" / "sessions").mkdir(parents=True)
    session = Session.create("run", run_dir)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    session.owner = process_identity(dead.pid)  # a harness that is gone (as after SIGKILL)
    dead.wait()
    session.save()
    lines = cleanup_sessions()
    assert any("marked" in line and "killed" in line for line in lines), lines
    assert json.loads((run_dir / "test.json").read_text())["status"] == "killed"
    (run_dir / "test.json").write_text(json.dumps({"name": "t", "status": "complete"}))
    cleanup_sessions()  # a finished run is never relabelled
    assert json.loads((run_dir / "test.json").read_text())["status"] == "complete"


def test_the_streaming_reader_reads_what_the_checkers_reader_reads(tmp_path: Path) -> None:
    from checkers.history import read_history

    run = make_run(tmp_path / "run", 3000, seed=5)
    path = run / "history.jsonl"
    warned: list[str] = []
    assert stream_history(path, warned.append) == read_history(path)
    with path.open("a") as f:
        f.write('{"process": 0, "ty')  # a writer killed mid-line
    assert stream_history(path, warned.append) == read_history(path, lambda _: None)
    assert warned and "incomplete" in warned[0]


def test_a_big_history_is_checked_in_bounded_memory(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", 60_000, seed=6, node_stats=False)
    size_mib = (run / "history.jsonl").stat().st_size / 2**20
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec
    measure = ("import runpy, sys\n"
               "sys.argv = ['harness', 'check', sys.argv[1], '--checker', 'perf', '--jobs', '1']\n"
               "try:\n    runpy.run_module('harness', run_name='__main__')\n"
               "finally:\n    print('PEAK', [l for l in open('/proc/self/status')"
               " if l.startswith('VmHWM')][0].split()[1], file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", measure, str(run)], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    peak = int(p.stderr.split("PEAK")[1].split()[0]) / 1024
    # before streaming, the whole file, its lines and every decoded record were held at once
    # (about 13x the file); now the operations alone (the interpreter is ~40 MiB of it)
    assert peak < 60 + 5 * size_mib, (peak, size_mib)
    inp, _, _ = load_input(run)
    assert len(inp.calls) > 50_000
