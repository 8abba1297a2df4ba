"""Start, stop and kill -9 real node processes for tests and benchmarks.

`LocalCluster` writes a cluster file with free ports on 127.0.0.2, 127.0.0.3, ... and runs each
node as `python -m node`. It only ever signals the PIDs it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str) -> int:
    """A port the OS says is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(hosts: list[str]) -> list[int]:
    """One free port per entry of `hosts`, all distinct: the sockets stay bound until every
    port is chosen, so the OS cannot hand out the same one twice."""
    socks = []
    try:
        for host in hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


class LocalCluster:
    def __init__(self, workdir: Path, size: int = 3, first_host: int = 2,
                 node_args: tuple[str, ...] = (), **settings: Any) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # e.g. DYNAMO_TEST_NODE_ARGS="--loop asyncio" to test without uvloop where it is installed
        self.node_args = (*os.environ.get("DYNAMO_TEST_NODE_ARGS", "").split(), *node_args)
        self.ids = [f"n{i + 1}" for i in range(size)]
        self.hosts = {nid: f"127.0.0.{first_host + i}" for i, nid in enumerate(self.ids)}
        ports = free_ports([self.hosts[nid] for nid in self.ids for _ in (0, 1)])
        self.client_ports = {nid: ports[2 * i] for i, nid in enumerate(self.ids)}
        self.peer_ports = {nid: ports[2 * i + 1] for i, nid in enumerate(self.ids)}
        self.settings = {"n": 3, "r": 2, "w": 2, "q": 64, "request_timeout_ms": 1000,
                         "data_dir": "data", "fsync": "always", "admin_token": "test-token",
                         **({} if "insecure" in settings else
                            {"cluster_secret": "test-cluster-secret-0123456789"}),
                         **settings}
        self.cluster_file = self.workdir / "cluster.toml"
        self.cluster_file.write_text(self.toml())
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Any] = {}

    def toml(self) -> str:
        lines = ["[cluster]"] + [f"{k} = {_toml_value(v)}" for k, v in self.settings.items()]
        for nid in self.ids:
            lines += ["", "[[nodes]]", f'id = "{nid}"', f'host = "{self.hosts[nid]}"',
                      f"client_port = {self.client_ports[nid]}",
                      f"peer_port = {self.peer_ports[nid]}"]
        return "\n".join(lines) + "\n"

    def url(self, nid: str, path: str = "") -> str:
        return f"http://{self.hosts[nid]}:{self.client_ports[nid]}{path}"

    def start(self, nid: str, *extra: str, wait: bool = True) -> subprocess.Popen:
        if nid in self.procs and self.procs[nid].poll() is None:
            raise RuntimeError(f"{nid} is already running")
        log = open(self.workdir / f"{nid}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.logs[nid] = log
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "--cluster", str(self.cluster_file), "--id", nid,
             *self.node_args, *extra],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        self.procs[nid] = proc
        if wait:
            self.wait_ready(nid)
        return proc

    def start_all(self) -> None:
        for nid in self.ids:
            self.start(nid, wait=False)
        for nid in self.ids:
            self.wait_ready(nid)

    def wait_ready(self, nid: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[nid]
            if proc.poll() is not None:
                raise RuntimeError(f"{nid} exited with {proc.returncode}:\n{self.log_text(nid)}")
            try:
                with urllib.request.urlopen(self.url(nid, "/admin/status"), timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{nid} not ready after {timeout}s:\n{self.log_text(nid)}")

    def log_text(self, nid: str) -> str:
        path = self.workdir / f"{nid}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill9(self, nid: str) -> None:
        proc = self.procs[nid]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self._close_log(nid)

    def stop(self, nid: str, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`; returns the exit code."""
        proc = self.procs[nid]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._close_log(nid)
        return proc.returncode

    def _close_log(self, nid: str) -> None:
        log = self.logs.pop(nid, None)
        if log is not None:
            log.close()

    def stop_all(self) -> None:
        for nid in list(self.procs):
            self.stop(nid, timeout=5)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def eventually(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (requests.RequestException, KeyError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")
