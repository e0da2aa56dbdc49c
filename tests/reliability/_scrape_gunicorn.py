"""gunicorn settings of the scrape-isolation test: metrics on their own port, in the master.

This is the production setup docs/security.md describes: the master process (which
serves no requests) renders the metrics of every worker from ``PROMETHEUS_MULTIPROC_DIR``
with ``buttress.middleware.serve_metrics``, at most once a second, at a lower priority.
"""

from __future__ import annotations

import os
from typing import Any


def when_ready(server: Any) -> None:
    from buttress.middleware import serve_metrics

    serve_metrics(int(os.environ["METRICS_PORT"]))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
