"""Prometheus metrics from many worker processes (gunicorn, uvicorn ``--workers``).

Call :func:`clear_multiprocess_dir` once in the master before workers start,
:func:`mark_worker_started` in each new worker and :func:`mark_worker_dead` in the master
when a worker exits; ``buttress.gunicorn`` wires the three as gunicorn hooks. See
docs/configuration.md.
"""

from __future__ import annotations

from .telemetry._multiprocess import clear_multiprocess_dir, mark_worker_dead, mark_worker_started

__all__ = ["clear_multiprocess_dir", "mark_worker_dead", "mark_worker_started"]
