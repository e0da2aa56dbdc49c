"""gunicorn server hooks for multiprocess metrics: one line in ``gunicorn.conf.py``.

```python
from buttress.gunicorn import child_exit, on_starting, post_fork  # noqa: F401
```

gunicorn calls module-level functions of its config file by their names. These empty
``PROMETHEUS_MULTIPROC_DIR`` when the master starts, claim each worker's pid before the
worker records anything, and fold an exited worker's values into the archive, so the
scrape cost stays bounded however often workers restart (see docs/configuration.md).
A config file that has its own hook calls the matching ``buttress`` function inside it.
"""

from __future__ import annotations

from typing import Any

from . import multiprocess as _multiprocess

__all__ = ["child_exit", "on_starting", "post_fork"]


def on_starting(server: Any) -> None:
    """Master start: :func:`buttress.multiprocess.clear_multiprocess_dir`."""
    _multiprocess.clear_multiprocess_dir()


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: :func:`buttress.multiprocess.mark_worker_started`."""
    _multiprocess.mark_worker_started()


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after a worker exited: :func:`buttress.multiprocess.mark_worker_dead`."""
    _multiprocess.mark_worker_dead(worker.pid)
