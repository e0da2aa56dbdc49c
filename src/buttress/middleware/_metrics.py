"""The HTTP server instruments, one set per Prometheus registry.

In one process the instruments are a small collector of our own: a request takes a lock
when it starts and one when it ends (with a dictionary lookup and two bisections), where
prometheus_client's
labelled histograms and gauge take about thirty Python calls and six locks per request,
more than the rest of the middleware's own work. Under
``PROMETHEUS_MULTIPROC_DIR`` (gunicorn, uvicorn workers) only prometheus_client's
file-backed values can be merged across processes, so its instruments are used then.

Two middleware instances on one registry share one set of instruments (registering a
name twice would fail); they must then agree on the duration buckets.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from .._errors import ConfigurationError
from ..telemetry import _names as names
from ..telemetry import _otel_metrics as otel_metrics
from ..telemetry._metrics import target_registry

__all__ = ["HTTPServerMetrics", "metrics_for"]

# error_type is empty for a request that ended well (Prometheus then drops the label).
_LABELS = (names.LABEL_METHOD, names.LABEL_ROUTE, names.LABEL_STATUS, names.LABEL_ERROR_TYPE)
_DURATION_HELP = "Duration of HTTP server requests, until the response body ended."
_ACTIVE_HELP = "Number of HTTP server requests in flight."
_SIZE_HELP = "Size of HTTP server response bodies."
_REQUEST_SIZE_HELP = "Size of HTTP server request bodies (when known)."


class HTTPServerMetrics(Protocol):
    """What the observer needs: in-flight counting and one call per finished request."""

    buckets: tuple[float, ...]

    def active_inc(self, method: str) -> None: ...

    def record(
        self,
        method: str,
        route: str,
        status: str,
        duration: float,
        size: int,
        trace_id: str | None,
        request_size: int | None = None,
        error_type: str = "",
    ) -> None:
        """One finished request (no longer in flight); ``trace_id`` becomes the exemplar.

        ``request_size`` is the request body's size when the shell knows it."""
        ...


class _Series:
    """Bucket counts (not cumulative), sums and the latest exemplar per duration bucket."""

    __slots__ = (
        "duration_counts", "duration_sum", "exemplars", "request_counts", "request_sum",
        "size_counts", "size_sum",
    )  # fmt: skip

    def __init__(self, duration_buckets: int, size_buckets: int) -> None:
        self.duration_counts = [0] * (duration_buckets + 1)  # the last one is +Inf
        self.duration_sum = 0.0
        self.size_counts = [0] * (size_buckets + 1)
        self.size_sum = 0.0
        self.request_counts: list[int] | None = None  # made by the first known size
        self.request_sum = 0.0
        # bucket -> (trace id, value, timestamp): made an Exemplar at scrape, not per request
        self.exemplars: dict[int, tuple[str, float, float]] = {}


class InProcessMetrics:
    """RED instruments for one process, collected into ``registry`` on scrape."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self._sizes = tuple(names.SIZE_BUCKETS)
        self._lock = threading.Lock()
        # Keys are bounded (known methods, route templates, status codes), so is the map.
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self._active: dict[str, int] = {}
        registry.register(self)

    def active_inc(self, method: str) -> None:
        with self._lock:
            self._active[method] = self._active.get(method, 0) + 1

    def record(
        self,
        method: str,
        route: str,
        status: str,
        duration: float,
        size: int,
        trace_id: str | None,
        request_size: int | None = None,
        error_type: str = "",
    ) -> None:
        key = (method, route, status, error_type)
        # le is inclusive: a duration equal to a boundary counts in that boundary's bucket.
        index = bisect_left(self.buckets, duration)
        size_index = bisect_left(self._sizes, size)
        request_index = None if request_size is None else bisect_left(self._sizes, request_size)
        with self._lock:
            self._active[method] -= 1
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self.buckets), len(self._sizes))
            series.duration_counts[index] += 1
            series.duration_sum += duration
            series.size_counts[size_index] += 1
            series.size_sum += size
            if request_index is not None:
                if series.request_counts is None:
                    series.request_counts = [0] * (len(self._sizes) + 1)
                series.request_counts[request_index] += 1
                series.request_sum += request_size  # type: ignore[operator]
            if trace_id is not None:
                series.exemplars[index] = (trace_id, duration, time.time())

    def describe(self) -> list[Metric]:
        request = HistogramMetricFamily(
            names.HTTP_SERVER_REQUEST_SIZE, _REQUEST_SIZE_HELP, labels=_LABELS
        )
        return [*_families(), request]

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # a consistent snapshot; the copies are small
            snapshot = [
                (
                    key,
                    list(s.duration_counts),
                    s.duration_sum,
                    list(s.size_counts),
                    s.size_sum,
                    dict(s.exemplars),
                    None if s.request_counts is None else list(s.request_counts),
                    s.request_sum,
                )
                for key, s in self._series.items()
            ]
            active = dict(self._active)
        duration, size, gauge = _families()
        request = HistogramMetricFamily(
            names.HTTP_SERVER_REQUEST_SIZE, _REQUEST_SIZE_HELP, labels=_LABELS
        )
        bounds = [_go_float(b) for b in self.buckets] + ["+Inf"]
        size_bounds = [_go_float(b) for b in self._sizes] + ["+Inf"]
        for key, counts, total, size_counts, size_total, latest, rcounts, rtotal in snapshot:
            exemplars = {
                i: Exemplar({names.LOG_KEY_TRACE_ID: trace_id}, value, at)
                for i, (trace_id, value, at) in latest.items()
            }
            duration.add_metric(list(key), _cumulative(bounds, counts, exemplars), total)
            size.add_metric(list(key), _cumulative(size_bounds, size_counts, {}), size_total)
            if rcounts is not None:
                request.add_metric(list(key), _cumulative(size_bounds, rcounts, {}), rtotal)
        for method, value in active.items():
            gauge.add_metric([method], value)
        yield from (duration, size, gauge, request)


def _families() -> tuple[HistogramMetricFamily, HistogramMetricFamily, GaugeMetricFamily]:
    return (
        HistogramMetricFamily(names.HTTP_SERVER_DURATION, _DURATION_HELP, labels=_LABELS),
        HistogramMetricFamily(names.HTTP_SERVER_RESPONSE_SIZE, _SIZE_HELP, labels=_LABELS),
        GaugeMetricFamily(names.HTTP_SERVER_ACTIVE, _ACTIVE_HELP, labels=[names.LABEL_METHOD]),
    )


def _go_float(value: float) -> str:
    # The "le" spelling prometheus_client uses (0.005, 1.0, 10.0), so series match theirs.
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _cumulative(bounds: list[str], counts: list[int], exemplars: dict[int, Exemplar]) -> list[Any]:
    buckets: list[Any] = []
    running = 0
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        running += count
        exemplar = exemplars.get(i)
        buckets.append((bound, running) if exemplar is None else (bound, running, exemplar))
    return buckets


class MultiprocessMetrics:
    """prometheus_client instruments, whose file-backed values merge across workers."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self._duration = Histogram(
            names.HTTP_SERVER_DURATION, _DURATION_HELP, _LABELS, buckets=self.buckets,
            registry=registry,
        )  # fmt: skip
        # livesum: the sum over live workers; a dead worker's in-flight count goes with it.
        self._active_requests = Gauge(
            names.HTTP_SERVER_ACTIVE, _ACTIVE_HELP, (names.LABEL_METHOD,), registry=registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self._size = Histogram(
            names.HTTP_SERVER_RESPONSE_SIZE, _SIZE_HELP, _LABELS, buckets=names.SIZE_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self._request_size = Histogram(
            names.HTTP_SERVER_REQUEST_SIZE, _REQUEST_SIZE_HELP, _LABELS,
            buckets=names.SIZE_BUCKETS, registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._request_children: dict[tuple[str, str, str, str], Any] = {}
        self._active: dict[str, Any] = {}

    def _active_child(self, method: str) -> Any:
        child = self._active.get(method)
        if child is None:
            child = self._active[method] = self._active_requests.labels(method)
        return child

    def active_inc(self, method: str) -> None:
        self._active_child(method).inc()

    def record(
        self,
        method: str,
        route: str,
        status: str,
        duration: float,
        size: int,
        trace_id: str | None,
        request_size: int | None = None,
        error_type: str = "",
    ) -> None:
        # prometheus_client keeps no exemplars in multiprocess mode: none are passed.
        self._active_child(method).dec()
        key = (method, route, status, error_type)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._duration.labels(*key),
                self._size.labels(*key),
            )
        children[0].observe(duration)
        children[1].observe(size)
        if request_size is not None:
            child = self._request_children.get(key)
            if child is None:
                child = self._request_children[key] = self._request_size.labels(*key)
            child.observe(request_size)


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, HTTPServerMetrics] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None, buckets: Sequence[float]) -> HTTPServerMetrics:
    """The instruments registered in ``registry`` (the one ``configure`` chose when ``None``)."""
    registry = target_registry() if registry is None else registry
    buckets = tuple(buckets)
    if any(not math.isfinite(b) for b in buckets):
        raise ConfigurationError(f"buckets must be finite (+Inf is implied): {buckets}")
    with _lock:
        existing = _by_registry.get(registry)
        if existing is None:
            # The variable that makes prometheus_client write per-process files decides
            # which instruments can be merged at scrape time.
            kind = MultiprocessMetrics if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None
            made: HTTPServerMetrics = (kind or InProcessMetrics)(registry, buckets)
            existing = _by_registry[registry] = made
        elif existing.buckets != buckets:
            raise ConfigurationError(
                f"this registry already has {names.HTTP_SERVER_DURATION} with buckets "
                f"{existing.buckets}, not {buckets}: give every middleware on one "
                "registry the same buckets and SLOs"
            )
    # OpenTelemetry instruments too (or instead), when configure() chose them.
    return otel_metrics.server(existing)
