"""Render a Prometheus registry for a ``/metrics`` response, with content negotiation.

A scraper that asks for OpenMetrics gets it (exemplars included); any other gets the
classic text format. When ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn or uvicorn
workers), the values of every live worker and the archive of dead ones are merged.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ._metrics import target_registry

__all__ = ["render"]


def render(
    registry: CollectorRegistry | None = None, accept: str | None = None
) -> tuple[bytes, str]:
    """``(body, content_type)`` for a scrape that sent the ``accept`` header.

    ``registry`` defaults to the one buttress records into (``configure(metrics_registry=...)``).
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Read at scrape time on purpose: the variable is what makes prometheus_client
        # write per-process files at all, so it decides the mode for us too.
        from ._multiprocess import ArchiveCollector

        registry = CollectorRegistry()
        registry.register(ArchiveCollector())
    elif registry is None:
        registry = target_registry()  # the one configure() chose
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
