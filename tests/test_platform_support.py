"""Shared helpers for the netns and docker platform tests (no tests of its own).

A platform test may skip where the machine cannot run it (no root, no Docker engine), saying why;
with CI=true such a skip is a failure, so CI never passes by skipping them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

CLI = [sys.executable, "-m", "harness"]


def skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a platform test must not skip)")
    pytest.skip(reason)


def need_netns() -> None:
    """Skip (fail in CI) unless namespaces and iptables can be used here."""
    if os.geteuid() != 0:
        skip_or_fail("the netns platform needs root")
    for tool in ("ip", "iptables"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip_or_fail(f"the netns platform needs {tool}")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        skip_or_fail(f"network namespaces do not work here: {probe.stderr.strip()}")


def build_node_image(tag: str | None = None) -> str:
    """Build the node image (under `tag`, else the default); skip (fail in CI) without an
    engine or a base image."""
    from harness.image_cmd import LOCAL_BASE, REGISTRY_BASE, build_image
    from harness.platforms.base import PlatformError
    from harness.platforms.docker import docker_client

    try:
        client = docker_client()
    except PlatformError as e:
        skip_or_fail(str(e))
    have = {t for img in client.images.list() for t in img.tags}
    if not {REGISTRY_BASE, LOCAL_BASE} & have:
        skip_or_fail(f"no base image: neither {REGISTRY_BASE} nor {LOCAL_BASE} is in the engine "
                     "(run scripts/make-base-image.sh)")
    try:
        built, _, _ = build_image(tag=tag) if tag else build_image()
    except PlatformError as e:
        skip_or_fail(f"the node image could not be built: {e}")
    return built


def tcp_connects(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection is made; False if it times out or is refused."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Run by `python3 -c` inside a namespace or container: prints ok, timeout or refused.
PROBE = ("import socket,sys\n"
         "try:\n"
         "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))"
         "\n    print('ok')\n"
         "except TimeoutError:\n    print('timeout')\n"
         "except OSError as e:\n    print('refused', e)\n")


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout


def host_leftovers(tag: str) -> list[str]:
    """Anything on this host whose name carries the cluster's tag (namespaces, links, rules)."""
    found = [f"netns {line}" for line in sh("ip netns list").splitlines() if tag in line]
    found += [f"link {line.split()[0]}" for line in sh("ip -br link").splitlines()
              if tag in line]
    found += [f"iptables {line}" for line in sh("iptables -S").splitlines() if tag in line]
    return found


def session_records(state: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((state / "sessions").glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def history_lines(out: Path) -> int:
    files = list(out.glob("*/*/history.jsonl"))
    return sum(len(f.read_text().splitlines()) for f in files)


def start_run(tmp_path: Path, env: dict[str, str], platform: str, nemesis: str,
              time_limit: float) -> subprocess.Popen:
    """`harness run` of the cart workload on a 3-node cluster of `platform`, in the background."""
    return subprocess.Popen(
        CLI + ["run", "--platform", platform, "--nemesis", nemesis, "--workload", "cart",
               "--time-limit", str(time_limit), "--nemesis-interval", "3", "--nodes", "3",
               "--q", "16", "--display", "quiet", "--out", str(tmp_path / "reports")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
