"""gunicorn settings of the scrape-isolation test: metrics on their own port, in the master.

This is the production setup docs/security.md describes: the master process (which
serves no requests) renders the metrics of every worker from ``PROMETHEUS_MULTIPROC_DIR``
with ``buttress.middleware.serve_metrics``, at most once a second, at a lower priority.
"""

from __future__ import annotations

import os
from typing import Any

from buttress.gunicorn import child_exit, on_starting, post_fork

__all__ = ["child_exit", "on_starting", "post_fork", "when_ready"]


def when_ready(server: Any) -> None:
    from buttress.middleware import serve_metrics

    serve_metrics(int(os.environ["METRICS_PORT"]))
