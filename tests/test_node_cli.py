"""`python -m node` refuses bad input with a clear message and a non-zero exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodeproc import ROOT, LocalCluster


def run_node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)


def test_unknown_bug_flag_is_an_error(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, size=1, n=1, r=1, w=1)
    p = run_node("--cluster", str(c.cluster_file), "--id", "n1", "--bug", "no-such-bug")
    assert p.returncode == 2
    assert "unknown bug name(s): no-such-bug" in p.stderr


def test_unknown_node_id_and_missing_file(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, size=1, n=1, r=1, w=1)
    p = run_node("--cluster", str(c.cluster_file), "--id", "n7")
    assert p.returncode == 2 and "node id 'n7' is not in the cluster file" in p.stderr
    p = run_node("--cluster", str(tmp_path / "missing.toml"), "--id", "n1")
    assert p.returncode == 2 and "cannot read cluster file" in p.stderr


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    import socket

    c = LocalCluster(tmp_path, size=1, n=1, r=1, w=1)
    with socket.socket() as s:
        s.bind((c.hosts["n1"], c.client_ports["n1"]))
        s.listen()
        p = run_node("--cluster", str(c.cluster_file), "--id", "n1")
    assert p.returncode == 1 and "cannot start" in p.stderr
