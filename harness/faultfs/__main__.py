"""`python3 -m harness.faultfs MOUNTPOINT --backing DIR --control SOCK`: run one faultfs mount
in the foreground until it is unmounted (or sent SIGTERM/SIGINT, which unmounts it)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m harness.faultfs",
        description="A FUSE passthrough that keeps what was not fsynced until a power cut "
                    "drops it (see harness/faultfs/tracker.py for the model).")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--backing", type=Path, required=True,
                        help="the directory that holds the files (the 'disk')")
    parser.add_argument("--control", type=Path, required=True,
                        help="unix socket for commands: status, cut")
    parser.add_argument("--sync-backing", action="store_true",
                        help="also fsync the backing file on fsync (real disk latency)")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="faultfs %(levelname)s %(message)s")
    try:
        import mfusepy
    except (ImportError, OSError) as e:  # OSError: no libfuse
        print(f"faultfs: cannot load mfusepy/libfuse3: {e}", file=sys.stderr)
        return 2

    from harness.faultfs import control
    from harness.faultfs.fs import FaultFS
    from harness.faultfs.tracker import Tracker

    args.backing.mkdir(parents=True, exist_ok=True)
    fs = FaultFS(Tracker(args.backing, sync_backing=args.sync_backing))

    def handle(msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg.get("cmd")
        if cmd == "cut":
            return fs.power_cut()
        if cmd == "status":
            return fs.t.status()
        if cmd == "ping":
            return {}
        raise ValueError(f"unknown command {cmd!r}; commands: cut, status, ping")

    control.serve(args.control, handle)
    mfusepy.FUSE(fs, str(args.mountpoint), foreground=True, nothreads=False,
                 fsname="faultfs", subtype="faultfs", debug=args.debug,
                 hard_remove=True, use_ino=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
