"""The HTTP client instruments, one set per Prometheus registry, labelled children cached.

``http_client_request_duration_seconds`` and ``http_client_active_requests`` as the
OpenTelemetry HTTP client conventions render in Prometheus. Every transport recording
into one registry shares one set (registering a name twice would fail). A label look-up
costs more than the observation itself, so children are cached by label tuple; the keys
are bounded (known methods, at most ``MAX_HOSTS`` hosts, status codes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..telemetry import _names as names
from ..telemetry import _otel_metrics as otel_metrics
from ..telemetry._metrics import PerRegistry, target_registry

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

__all__ = ["ClientMetrics", "client_metrics_for"]


class ClientMetrics:
    """The client duration histogram and in-flight gauge of one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.duration = Histogram(
            names.HTTP_CLIENT_DURATION,
            "Duration of outbound HTTP requests, until the response headers arrived.",
            (names.LABEL_METHOD, names.LABEL_SERVER_ADDRESS, names.LABEL_STATUS),
            buckets=names.DURATION_BUCKETS,
            registry=registry,
        )
        # livesum: in multiprocess mode, the sum over live workers.
        self.active_requests = Gauge(
            names.HTTP_CLIENT_ACTIVE,
            "Outbound HTTP requests in flight.",
            (names.LABEL_METHOD, names.LABEL_SERVER_ADDRESS),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.deadline_exceeded_total = Counter(
            names.HTTP_CLIENT_DEADLINE_EXCEEDED,
            "Outbound requests the caller's own deadline stopped (not sent, or cut short).",
            (names.LABEL_SERVER_ADDRESS, names.LABEL_REASON),
            registry=registry,
        )
        self._durations: dict[tuple[str, str, str], Any] = {}
        self._active: dict[tuple[str, str], Any] = {}

    def deadline_exceeded(self, host: str, reason: str) -> None:
        """One request the deadline stopped: ``spent`` before sending, ``cut`` in flight."""
        self.deadline_exceeded_total.labels(host, reason).inc()

    def active(self, method: str, host: str) -> Any:
        """The in-flight gauge child of ``(method, host)``."""
        key = (method, host)
        child = self._active.get(key)
        if child is None:
            # Two threads may both get here: labels() returns the same child to both.
            child = self._active[key] = self.active_requests.labels(method, host)
        return child

    def observe(
        self, method: str, host: str, status: str, duration: float, span: SpanContext
    ) -> None:
        """One attempt ended; a sampled client span's ids become the exemplar."""
        key = (method, host, status)
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = self.duration.labels(method, host, status)
        if span.trace_flags.sampled:  # an unsampled trace never reaches the backend
            exemplar = {
                names.LOG_KEY_TRACE_ID: format(span.trace_id, "032x"),
                names.LOG_KEY_SPAN_ID: format(span.span_id, "016x"),
            }
            child.observe(duration, exemplar)
        else:
            child.observe(duration)


_client = PerRegistry(ClientMetrics)


def client_metrics_for(registry: CollectorRegistry | None) -> ClientMetrics:
    """The instruments on ``registry`` (the one ``buttress.configure`` chose when ``None``)."""
    # OpenTelemetry instruments too (or instead), when configure() chose them.
    return otel_metrics.client(_client.get(target_registry() if registry is None else registry))
