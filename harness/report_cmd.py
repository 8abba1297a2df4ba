"""`harness report RUN_DIR` (re-render a run's report) and `harness serve` (browse reports/)."""

from __future__ import annotations

import functools
import ipaddress
import signal
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import click

RUN_FILES = ("test.json", "history.jsonl", "results.json")
INDEX_MIN_INTERVAL_S = 2.0


def _index_root_for(run_dir: Path) -> Path | None:
    """reports/ for reports/<test>/<timestamp>/, recognised by its index or `latest` link."""
    root = run_dir.resolve().parent.parent
    if (root / "index.html").exists() or (root / "latest").is_symlink():
        return root
    return None


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--index", "index_root", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="also rebuild INDEX/index.html [default: the reports folder "
              "two levels up, when it has an index.html or a `latest` link]")
def report(run_dir: Path, index_root: Path | None) -> int:
    """Re-render RUN_DIR/report.html from the run's files (test.json, history.jsonl,
    results.json, replicas.json, resources.jsonl, nodes/*/node.log).

    Any missing optional file is named in the report. Example: harness report reports/latest
    """
    from harness.report import render_index, render_run

    if not run_dir.is_dir():
        raise click.ClickException(f"{run_dir} is not a directory")
    if not any((run_dir / f).exists() for f in RUN_FILES):
        raise click.ClickException(
            f"{run_dir} is not a run directory: it has none of {', '.join(RUN_FILES)} "
            "(a run is reports/<test>/<timestamp>/, or reports/latest)")
    started = time.monotonic()
    out = render_run(run_dir)
    click.echo(f"report: {out} ({out.stat().st_size / 2**20:.1f} MiB, "
               f"{time.monotonic() - started:.1f} s)")
    root = index_root or _index_root_for(run_dir)
    if root is not None:
        click.echo(f"index: {render_index(root)}")
    return 0


class _ReportsHandler(SimpleHTTPRequestHandler):
    """Static files from the reports folder, never cached (runs are re-rendered in place); the
    index is rebuilt when asked for, so new runs appear without restarting the server."""

    index_lock = threading.Lock()
    last_index = 0.0
    quiet = False

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._refresh_index()
        super().do_GET()

    def _refresh_index(self) -> None:
        from harness.report import render_index

        cls = type(self)
        with cls.index_lock:
            if time.monotonic() - cls.last_index < INDEX_MIN_INTERVAL_S:
                return
            try:
                render_index(Path(self.directory))
            except OSError as e:
                self.log_message("could not rebuild the index: %s", e)
            cls.last_index = time.monotonic()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)


def _loopback(host: str) -> str:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise click.BadParameter(f"{host!r} is not an IP address", param_hint="--host") from None
    if not addr.is_loopback:
        raise click.BadParameter(
            f"{host} is not a loopback address; reports are served on 127.0.0.0/8 only "
            "(forward the port, e.g. with ssh -L, to browse from elsewhere)", param_hint="--host")
    return host


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0: any free port, printed on start)")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports"), show_default=True, help="the reports folder to serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="loopback address to listen on")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=0,
              help="stop after this many seconds (0: run until Ctrl-C or SIGTERM)")
@click.option("--quiet", is_flag=True, help="do not log each request")
def serve(port: int, directory: Path, host: str, timeout_s: float, quiet: bool) -> int:
    """Serve the reports folder over HTTP for browsing: the index of runs at /, each run's
    report under /<test>/<timestamp>/report.html, the newest at /latest/report.html.

    Example: harness serve --port 8080, then open http://127.0.0.1:8080/
    """
    from harness.report import render_index

    _loopback(host)
    if not directory.is_dir():
        raise click.ClickException(
            f"{directory} does not exist; run a test first (harness run) or pass --dir")
    render_index(directory)
    handler = functools.partial(_ReportsHandler, directory=str(directory.resolve()))
    _ReportsHandler.quiet = quiet
    _ReportsHandler.last_index = time.monotonic()
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    server.daemon_threads = True
    bound = server.server_address[1]

    def stop(signum: int | None = None, frame: FrameType | None = None) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on that thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(timeout_s, stop) if timeout_s else None
    if timer:
        timer.daemon = True
        timer.start()
    click.echo(f"serving {directory} at http://{host}:{bound}/ (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if timer:
            timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    click.echo("stopped")
    return 0
