"""The application of the scrape-isolation test: a WSGI ``/hello`` with 20,000 series.

Served by gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set; the metrics are exported from
gunicorn's master process on their own port (``_scrape_gunicorn.py``), as docs/security.md
recommends for production, so that scrapes never share the worker's interpreter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter

from buttress.middleware import WSGIMiddleware

SERIES = int(os.environ.get("SCRAPE_SERIES", "20000"))
things = Counter("app_things_total", "Things the app counted, by kind and key.", ["kind", "key"])
for i in range(SERIES):
    things.labels(str(i % 200), str(i)).inc()


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


app = WSGIMiddleware(hello, service="scrape-isolation", tracing=False)
