"""The metrics seam: one recording per request into the back-ends configure() chose, and
the bounded flush at the stop. In-process, with the SDK's in-memory reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import REGISTRY, CollectorRegistry

from buttress.httpx._client_metrics import client_metrics_for
from buttress.middleware._metrics import metrics_for
from buttress.telemetry import _metrics, _otel_export, _otel_metrics, _shutdown
from buttress.telemetry import _names as names

BUCKETS = (0.1, 0.3, 1.0)


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    _otel_metrics.choose(provider.get_meter("buttress"), prometheus=True)
    yield reader
    _otel_metrics.choose(None, prometheus=True)
    provider.shutdown()


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    value: float | None = registry.get_sample_value(name, labels)
    return value


def test_nothing_chosen_is_prometheus_alone() -> None:
    registry = CollectorRegistry()
    assert metrics_for(registry, BUCKETS) is metrics_for(registry, BUCKETS)
    assert type(metrics_for(registry, BUCKETS)).__name__ == "InProcessMetrics"


def test_one_recording_reaches_both_back_ends(reader: InMemoryMetricReader) -> None:
    registry = CollectorRegistry()
    metrics = metrics_for(registry, BUCKETS)
    assert metrics is metrics_for(registry, BUCKETS)  # decided once, not per request
    metrics.active_inc("GET")
    metrics.record("GET", "/users/{id}", "200", 0.2, 512, None)
    metrics.active_inc("GET")
    metrics.record("GET", names.ROUTE_UNMATCHED, "503", 0.05, 10, None)

    labels = {"http_request_method": "GET", "http_route": "/users/{id}", "error_type": ""}
    count = f"{names.HTTP_SERVER_DURATION}_count"
    assert _sample(registry, count, **labels, http_response_status_code="200") == 1.0
    points = _points(reader)
    duration = {
        tuple(sorted(p.attributes.items())): p for p in points[names.OTEL_HTTP_SERVER_DURATION]
    }
    ok = duration[
        (
            ("http.request.method", "GET"),
            ("http.response.status_code", 200),
            ("http.route", "/users/{id}"),
        )
    ]
    assert (ok.count, ok.sum, list(ok.explicit_bounds)) == (1, 0.2, list(BUCKETS))
    # The conventions: no http.route when nothing matched; error.type for a 5xx.
    failed = duration[
        (("error.type", "503"), ("http.request.method", "GET"), ("http.response.status_code", 503))
    ]
    assert failed.count == 1
    (active,) = points[names.OTEL_HTTP_SERVER_ACTIVE]
    assert active.value == 0
    assert "http.server.response.body.size" not in points  # opt-in; /metrics has it


def test_otel_alone_records_nothing_into_prometheus() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    _otel_metrics.choose(provider.get_meter("buttress"), prometheus=False)
    try:
        registry = CollectorRegistry()
        metrics = metrics_for(registry, BUCKETS)
        metrics.active_inc("GET")
        metrics.record("GET", "/a", "200", 0.2, 1, None)
        count = f"{names.HTTP_SERVER_DURATION}_count"
        labels = {"http_request_method": "GET", "http_route": "/a"}
        assert _sample(registry, count, **labels, http_response_status_code="200") is None
        assert _points(reader)[names.OTEL_HTTP_SERVER_DURATION][0].count == 1
    finally:
        _otel_metrics.choose(None, prometheus=True)
        provider.shutdown()


def test_client_metrics_reach_both(reader: InMemoryMetricReader) -> None:
    from opentelemetry.trace import INVALID_SPAN_CONTEXT

    registry = CollectorRegistry()
    metrics = client_metrics_for(registry)
    assert metrics.registry is registry  # the transports' check of which set they follow
    active = metrics.active("GET", "api.internal")
    active.inc()
    active.dec()
    metrics.observe("GET", "api.internal", "", 0.5, INVALID_SPAN_CONTEXT)
    (point,) = _points(reader)[names.OTEL_HTTP_CLIENT_DURATION]
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "api.internal",
        "error.type": "_OTHER",
    }
    labels = {"http_request_method": "GET", "server_address": "api.internal"}
    count = f"{names.HTTP_CLIENT_DURATION}_count"
    assert _sample(registry, count, **labels, http_response_status_code="") == 1.0


def test_deadline_exceeded_reaches_both(reader: InMemoryMetricReader) -> None:
    registry = CollectorRegistry()
    client_metrics_for(registry).deadline_exceeded("api.internal", names.DEADLINE_CUT)
    otel_name, _ = names.OTEL_RESILIENCE[names.HTTP_CLIENT_DEADLINE_EXCEEDED]
    (point,) = _points(reader)[otel_name]
    assert point.value == 1
    assert dict(point.attributes) == {"server.address": "api.internal", "reason": "cut"}
    labels = {"server_address": "api.internal", "reason": "cut"}
    assert _sample(registry, names.HTTP_CLIENT_DEADLINE_EXCEEDED, **labels) == 1.0


def test_resilience_metrics_reach_both(reader: InMemoryMetricReader) -> None:
    from buttress._events import BreakerTransition, RetryScheduled

    registry = CollectorRegistry()
    _metrics.set_target_registry(registry)
    try:
        current = _metrics.current()
        current.record(RetryScheduled(name="pay", attempt=1, wait=0.1, error_type="TimeoutError"))
        current.record(BreakerTransition(name="pay", old="closed", new="open", reason="failures"))
    finally:
        _metrics.set_target_registry(REGISTRY)
    points = _points(reader)
    (attempt,) = points["buttress.retry.attempts"]
    assert (dict(attempt.attributes), attempt.value) == (
        {"policy": "pay", "error.type": "TimeoutError"},
        1,
    )
    states = {p.attributes["state"]: p.value for p in points["buttress.circuit_breaker.state"]}
    assert (states["open"], states["closed"]) == (1, 0)
    labels = {"policy": "pay", "error_type": "TimeoutError"}
    assert _sample(registry, "buttress_retry_attempts_total", **labels) == 1.0


def test_every_resilience_instrument_has_an_otel_name() -> None:
    # Websocket metrics are the middleware's, recorded in Prometheus only (not resilience);
    # so are the jobs metrics of buttress.jobs.
    jobs = {
        names.MESSAGE_REDELIVERIES,
        names.MESSAGES_DEAD_LETTERED,
        names.IDEMPOTENCY_CHECKS,
        names.CONSUMER_LAG,
        names.CONSUMER_PENDING,
        names.MESSAGES_CLAIMED,
    }
    prometheus = {
        v
        for k, v in vars(names).items()
        if isinstance(v, str)
        and v.startswith("buttress_")
        and not v.startswith("buttress_websocket_")
        and v not in jobs
    }
    assert prometheus == set(names.OTEL_RESILIENCE)
    otel = [name for name, _ in names.OTEL_RESILIENCE.values()]
    assert len(set(otel)) == len(otel)


class _Stuck:
    """A provider whose export never ends (an endpoint that never answers)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.flushes = 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flushes += 1
        self.release.wait()
        return True

    def shutdown(self) -> None:
        self.release.wait()


def test_the_flush_is_bounded_even_when_the_exporter_hangs() -> None:
    stuck = _Stuck()
    _shutdown.register(stuck, timeout=5.0)
    try:
        assert _shutdown.flush(0.05) is False
        assert stuck.flushes == 1
        assert _shutdown.shutdown(0.05) is False
        assert _shutdown.shutdown(0.05) is True  # once only
    finally:
        stuck.release.set()
        _shutdown._reset()


@pytest.mark.parametrize(
    ("level", "number"),
    [(5, 1), (10, 5), (20, 9), (21, 10), (30, 13), (40, 17), (50, 21), (60, 24)],
)
def test_log_severity_numbers(level: int, number: int) -> None:
    assert _otel_export._severity(level) == number
