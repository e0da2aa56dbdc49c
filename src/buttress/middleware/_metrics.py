"""The HTTP server instruments, one set per Prometheus registry, labelled children cached.

Two middleware instances on one registry share one set of instruments (registering a
name twice would fail); they must then agree on the duration buckets.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

from .._errors import ConfigurationError
from ..telemetry import _names as names

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["HTTPServerMetrics", "metrics_for"]

_LABELS = (names.LABEL_METHOD, names.LABEL_ROUTE, names.LABEL_STATUS)


class HTTPServerMetrics:
    """RED instruments of the HTTP server conventions, as Prometheus renders them."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.duration = Histogram(
            names.HTTP_SERVER_DURATION,
            "Duration of HTTP server requests, until the response body ended.",
            _LABELS,
            buckets=self.buckets,
            registry=registry,
        )
        # livesum: in multiprocess mode the gauge is the sum over live workers, and a
        # dead worker's in-flight count disappears with it instead of sticking forever.
        self.active_requests = Gauge(
            names.HTTP_SERVER_ACTIVE,
            "Number of HTTP server requests in flight.",
            (names.LABEL_METHOD,),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.response_size = Histogram(
            names.HTTP_SERVER_RESPONSE_SIZE,
            "Size of HTTP server response bodies.",
            _LABELS,
            buckets=names.SIZE_BUCKETS,
            registry=registry,
        )
        # Label lookups cost more than the observation itself: children are cached. Keys
        # are bounded (known methods, route templates, status codes), so is the cache.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._active: dict[str, Any] = {}

    def active(self, method: str) -> Any:
        """The in-flight gauge child for ``method``."""
        child = self._active.get(method)
        if child is None:
            child = self._active[method] = self.active_requests.labels(method)
        return child

    def record(
        self,
        method: str,
        route: str,
        status: str,
        duration: float,
        size: int,
        trace_id: str | None,
    ) -> None:
        """One finished request; ``trace_id`` (of a sampled trace) becomes the exemplar."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.duration.labels(method, route, status),
                self.response_size.labels(method, route, status),
            )
        if trace_id is None:
            children[0].observe(duration)
        else:
            children[0].observe(duration, {names.LOG_KEY_TRACE_ID: trace_id})
        children[1].observe(size)


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HTTPServerMetrics] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None, buckets: Sequence[float]) -> HTTPServerMetrics:
    """The instruments registered in ``registry`` (the default one when ``None``)."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        existing = _by_registry.get(registry)
        if existing is None:
            existing = _by_registry[registry] = HTTPServerMetrics(registry, buckets)
        elif existing.buckets != tuple(buckets):
            raise ConfigurationError(
                f"this registry already has {names.HTTP_SERVER_DURATION} with buckets "
                f"{existing.buckets}, not {tuple(buckets)}: give every middleware on one "
                "registry the same buckets and SLOs"
            )
        return existing
