"""Time from `harness run` to its first client operation, per platform (the image build excluded).

    python benchmarks/platform_startup.py [--platforms local,netns,docker,ssh] [--repeat 3]
                                          [--hosts hosts.toml]

Each sample starts `harness run --nemesis none --time-limit 2 --nodes 5` in a fresh state
directory and watches its history file for the first client `invoke`; it also reports the whole
command's wall time. A platform this machine cannot run (no root, no Docker engine or image) is
reported as skipped. Bounded: each run is killed after 120 s. For ssh without --hosts, five
test hosts are made for the measurement (tests/sshhosts.py: namespaces with an sshd each, root)
and removed after it; their making is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkers.history import read_jsonl  # noqa: E402

CLI = [sys.executable, "-m", "harness"]
RUN_TIMEOUT_S = 120.0


def first_invoke_seen(out: Path) -> bool:
    for history in out.glob("*/2*/history.jsonl"):
        # a line being written is a torn last line: dropped, and no need to say so
        if any(op.type == "invoke" and not op.is_nemesis
               for op in read_jsonl(history, warn=lambda _: None)):
            return True
    return False


def sample(platform: str, hosts: Path | None = None) -> tuple[float, float]:
    """(seconds to the first operation, seconds for the whole command)."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        out = Path(tmp) / "reports"
        env = dict(os.environ, HARNESS_STATE_DIR=str(Path(tmp) / "state"))
        t0 = time.monotonic()
        proc = subprocess.Popen(
            CLI + ["run", "--platform", platform, "--nemesis", "none", "--workload", "cart",
                   "--time-limit", "2", "--nodes", "5", "--display", "quiet", "--out", str(out)]
            + (["--hosts", str(hosts)] if hosts else []),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = None
        try:
            while proc.poll() is None and time.monotonic() - t0 < RUN_TIMEOUT_S:
                if first is None and first_invoke_seen(out):
                    first = time.monotonic() - t0
                time.sleep(0.005)
            if proc.poll() is None:
                raise RuntimeError(f"{platform}: still running after {RUN_TIMEOUT_S:.0f} s")
        finally:
            if proc.poll() is None:
                proc.kill()
            output = proc.communicate()[0]
        total = time.monotonic() - t0
        if proc.returncode != 0 or first is None:
            raise RuntimeError(f"{platform}: exit {proc.returncode}\n{output[-1500:]}")
        return first, total


def usable(platform: str) -> str | None:
    """None if the platform can run here, else why not."""
    if platform == "netns" and os.geteuid() != 0:
        return "needs root"
    if platform == "ssh":
        sys.path.insert(0, str(ROOT / "tests"))
        import sshhosts

        return sshhosts.missing()
    if platform == "docker":
        from harness.platforms.base import PlatformError
        from harness.platforms.docker import DEFAULT_IMAGE, docker_client

        try:
            docker_client().images.get(DEFAULT_IMAGE)
        except PlatformError as e:
            return str(e)
        except Exception:  # ImageNotFound
            return f"no image {DEFAULT_IMAGE}: run `harness image build`"
    return None


@contextlib.contextmanager
def ssh_hosts(platform: str, given: Path | None) -> Iterator[Path | None]:
    """The hosts file for an ssh sample: the one given, or five test hosts made for it."""
    if platform != "ssh" or given is not None:
        yield given
        return
    import sshhosts

    with tempfile.TemporaryDirectory(prefix="bench-sshhosts-") as tmp:
        sshhosts.up(Path(tmp))
        try:
            yield Path(tmp) / "hosts.toml"
        finally:
            sshhosts.down(Path(tmp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--platforms", default="local,netns,docker,ssh")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hosts", type=Path, default=None,
                    help="ssh: this hosts file (default: make five test hosts here)")
    args = ap.parse_args()
    print(f"{'platform':<8} {'to first op (s), median [min-max]':<36} whole run (s, 2 s workload)")
    for platform in args.platforms.split(","):
        why = None if platform == "ssh" and args.hosts else usable(platform)
        if why:
            print(f"{platform:<8} skipped: {why}")
            continue
        with ssh_hosts(platform, args.hosts) as hosts:
            firsts, totals = zip(*(sample(platform, hosts) for _ in range(args.repeat)),
                                 strict=True)
        print(f"{platform:<8} {statistics.median(firsts):6.2f} [{min(firsts):.2f}-"
              f"{max(firsts):.2f}]{'':<20} {statistics.median(totals):6.2f}")


if __name__ == "__main__":
    main()
