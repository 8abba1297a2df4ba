"""Harness pieces that need no cluster: settings, history, state records, client outcomes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web

from checkers.history import TornLineWarning, read_jsonl
from harness.client import NodeClient, OpFailed, OpUnknown
from harness.history import History
from harness.quiesce import replicas_agree, replicas_document
from harness.run_cmd import worst
from harness.runner import RateLimiter
from harness.settings import ClusterSettings, TestSettings
from harness.state import Session, matching_process, process_identity
from harness.workloads import make_workload
from harness.workloads.base import union


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(path))
    return path


def harness_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args],
                          capture_output=True, text=True, timeout=60, env=env)


# -- settings and flags ----------------------------------------------------------------------

def test_default_settings_are_valid_and_sensible() -> None:
    s = TestSettings()
    assert s.errors() == []
    c = s.cluster
    assert (s.time_limit, c.nodes, c.n, c.r, c.w) == (60, 5, 3, 2, 2)
    assert s.name == "cart-none"


def test_settings_name_every_problem() -> None:
    bad = TestSettings(workload="nope", rate=-1, concurrency=0,
                       cluster=ClusterSettings(nodes=3, n=4, r=5, w=0, q=48))
    text = "; ".join(bad.errors())
    for needle in ("unknown workload", "--rate", "--concurrency", "--n must", "--r must",
                   "--w must", "power of two"):
        assert needle in text


@pytest.mark.parametrize("args, needle", [
    (["--workload", "bank"], "'bank' is not one of"),
    (["--r", "4"], "--r must be between 1 and --n (3)"),
    (["--w", "5", "--n", "3"], "--w must be between 1 and --n (3)"),
    (["--rate", "-5"], "--rate must be positive"),
    (["--nemesis", "partition,meteor"], "unknown nemesis meteor"),
    (["--nodes", "0"], "--nodes must be at least 1"),
    (["--time-limit", "0"], "--time-limit must be positive"),
    (["--test-count", "0"], "--test-count"),
])
def test_bad_flags_are_usage_errors_with_exit_3(args: list[str], needle: str,
                                                tmp_path: Path) -> None:
    proc = harness_cli("run", "--out", str(tmp_path / "reports"), *args)
    assert proc.returncode == 3, proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "reports").exists()  # nothing was started


def test_help_of_my_commands() -> None:
    for args in (["run", "--help"], ["list", "--help"], ["cluster", "--help"],
                 ["cluster", "up", "--help"], ["cleanup", "--help"]):
        proc = harness_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage:" in proc.stdout
    listing = harness_cli("list").stdout
    for name in ("cart", "register", "set", "partition", "clock", "crash", "pause", "local",
                 "majorities-ring"):
        assert name in listing


def test_worst_exit_code() -> None:
    assert worst([0, 0]) == 0
    assert worst([0, 2]) == 2
    assert worst([2, 1, 0]) == 1
    assert worst([1, 3]) == 3


# -- history -------------------------------------------------------------------------------

def test_history_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = History(path)
    history.append(process=0, type="invoke", f="read", key="k", value=None)
    history.append(process=0, type="ok", f="read", key="k", value=[1])
    ops = read_jsonl(path)  # read while the writer is still open
    assert [o.index for o in ops] == [0, 1]
    assert ops[0].time <= ops[1].time
    assert list(json.loads(path.read_text().splitlines()[1]))[:7] == [
        "index", "time", "process", "type", "f", "key", "value"]
    history.close()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"index": 0, "time": 1, "process": 0, "type": "invoke", "f": "read"}\n'
                    '{"index": 1, "ti')
    with pytest.warns(TornLineWarning, match="line 2: the last line is incomplete"):
        ops = read_jsonl(path)
    assert [(o.index, o.time) for o in ops] == [(0, 1)]


# -- workloads, rates, convergence ---------------------------------------------------------

def test_union_merges_sibling_lists() -> None:
    assert union([["a", "b"], ["b", "c"], None]) == {"a", "b", "c"}
    assert union([[1], 2]) == {1, 2}


@pytest.mark.parametrize("name", ["cart", "register", "set"])
def test_workload_values_are_unique(name: str) -> None:
    import random

    wl = make_workload(name, 5, random.Random(1))
    ops = [wl.next_op() for _ in range(500)]
    written = [op.value for op in ops if op.f not in ("read", "delete")]
    assert written and len(written) == len(set(written))
    assert {op.key for op in ops} <= set(wl.all_keys())


def test_rate_limiter_spaces_operations() -> None:
    async def go() -> float:
        limiter = RateLimiter(200)
        t0 = time.monotonic()
        await asyncio.gather(*(limiter.wait() for _ in range(41)))
        return time.monotonic() - t0

    elapsed = asyncio.run(go())
    assert 0.18 <= elapsed < 0.6  # 40 gaps of 5 ms


def test_replicas_agree() -> None:
    same = {"preference_list": ["a", "b"], "replicas": {
        "a": {"ok": True, "versions": [{"id": "a:1"}]},
        "b": {"ok": True, "versions": [{"id": "a:1"}]}}}
    assert replicas_agree(same)
    differ = json.loads(json.dumps(same))
    differ["replicas"]["b"]["versions"].append({"id": "b:1"})
    assert not replicas_agree(differ)
    missing = json.loads(json.dumps(same))
    missing["replicas"]["b"] = {"ok": False, "error": "timeout"}
    assert not replicas_agree(missing)
    doc = replicas_document(5, None, {"k": same})
    assert doc == {"heal_time": 5, "converged_time": None,
                   "keys": {"k": {"preference_list": ["a", "b"], "replicas": same["replicas"]}}}


# -- the client's fail/info classification, against a real HTTP server --------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _with_server(handler, fn):  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_route("*", "/kv/{key}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await fn(NodeClient(session, "n1", f"http://127.0.0.1:{port}", 0.5))
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status, body, expected", [
    (503, {"error": "quorum_failed", "written": 0}, OpFailed),
    (503, {"error": "quorum_failed", "written": 2}, OpUnknown),
    (400, {"error": "bad_request"}, OpFailed),
    (500, {"error": "internal"}, OpUnknown),
    ("slow", {}, OpUnknown),
])
def test_write_outcomes(status: object, body: dict, expected: type) -> None:
    async def handler(request: web.Request) -> web.Response:
        if status == "slow":
            await asyncio.sleep(2)
        return web.json_response(body, status=status if isinstance(status, int) else 200)

    async def put(client: NodeClient) -> None:
        await client.put("k", 1, None)

    with pytest.raises(expected):
        asyncio.run(_with_server(handler, put))


def test_refused_connection_is_certain_failure() -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            await NodeClient(session, "n1", f"http://127.0.0.1:{_free_port()}", 1).put("k", 1, None)

    with pytest.raises(OpFailed, match="connect failed"):
        asyncio.run(go())


def test_read_404_is_an_empty_ok() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"key": "k", "values": [], "context": "c0"}, status=404)

    async def get(client: NodeClient):  # type: ignore[no-untyped-def]
        return await client.get("k")

    reply = asyncio.run(_with_server(handler, get))
    assert reply.values == [] and reply.context == "c0" and not reply.found


# -- state records and cleanup -------------------------------------------------------------

def test_matching_process_rejects_a_reused_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ident = process_identity(proc.pid)
        assert matching_process(ident) is not None
        assert matching_process({**ident, "create_time": ident["create_time"] - 100}) is None
        assert matching_process({**ident, "cmdline": ["something", "else"]}) is None
    finally:
        proc.kill()
        proc.wait()
    assert matching_process(ident) is None


def test_cleanup_kills_only_recorded_matching_processes(tmp_path: Path) -> None:
    recorded = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
    try:
        os.kill(recorded.pid, 19)  # SIGSTOP: cleanup must still get it down
        session = Session(kind="run", dir=str(tmp_path), id="crashed-run")
        session.owner = {"pid": 999999, "create_time": 0, "cmdline": ["gone"]}  # a dead harness
        session.nodes = {
            "n1": process_identity(recorded.pid),
            # the bystander's pid, but a start time that is not its own: a recycled pid
            "n2": {**process_identity(bystander.pid), "create_time": 1.0},
        }
        session.save()
        first = harness_cli("cleanup", env=dict(os.environ))
        assert first.returncode == 0, first.stderr
        assert "stopped n1" in first.stdout
        assert recorded.wait(timeout=10) is not None
        assert psutil.pid_exists(bystander.pid) and bystander.poll() is None
        second = harness_cli("cleanup", env=dict(os.environ))
        assert second.returncode == 0 and "nothing to clean up" in second.stdout
    finally:
        for p in (recorded, bystander):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_cleanup_leaves_a_live_run_alone(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        session = Session(kind="run", dir=str(tmp_path), id="live-run")
        session.owner = process_identity(os.getpid())  # this test is the "harness"
        session.nodes = {"n1": process_identity(child.pid)}
        session.save()
        proc = harness_cli("cleanup", env=dict(os.environ))
        assert "still in progress" in proc.stdout
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
