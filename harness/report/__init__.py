"""The HTML consistency report of a run, and the index of all runs.

`render_run(run_dir)` writes `run_dir/report.html`; `render_index(root)` writes `root/index.html`.
Both pages are self-contained: no request to any other host.
"""

from harness.report.index import render_index
from harness.report.render import render_run

__all__ = ["render_index", "render_run"]
