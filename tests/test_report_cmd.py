"""`harness report` and `harness serve` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.report.synthetic import make_run

CLI = [sys.executable, "-m", "harness"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_rerenders_and_rebuilds_index(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    run = make_run(root / "t" / "20250101T000000", 300, seed=2)
    (root / "latest").symlink_to("t/20250101T000000")
    done = subprocess.run([*CLI, "report", str(root / "latest")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (run / "report.html").stat().st_size > 1_000_000
    assert (root / "index.html").exists()
    assert "report:" in done.stdout and "index:" in done.stdout


def test_report_on_a_non_run_directory_fails_with_exit_3(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "report", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    assert "is not a run directory" in done.stderr


def test_serve_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "serve", "--dir", str(tmp_path), "--host", "0.0.0.0",
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "not a loopback address" in done.stderr


@pytest.mark.cluster
def test_serve_serves_index_and_reports_and_stops_on_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    run = make_run(root / "t" / "20250101T000000", 300, seed=2, invalid=True)
    from harness.report import render_run

    render_run(run)
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--dir", str(root), "--quiet",
                             "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            index = r.read().decode()
        assert 'href="t/20250101T000000/report.html"' in index and "v-invalid" in index
        url = f"http://127.0.0.1:{port}/t/20250101T000000/report.html"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.headers["Cache-Control"] == "no-cache"
            assert b"<title>INVALID" in r.read()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_serve_stops_by_itself_after_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run([*CLI, "serve", "--port", "0", "--dir", str(tmp_path), "--quiet",
                           "--timeout", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout and time.monotonic() - started < 30
