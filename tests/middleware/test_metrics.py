"""The in-process HTTP instruments expose what prometheus_client's own would."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from buttress.middleware._metrics import InProcessMetrics
from buttress.telemetry import _names as names

LABELS = {"http_request_method": "GET", "http_route": "/r", "http_response_status_code": "200"}


def bucket(registry: CollectorRegistry, le: str) -> float | None:
    return registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_bucket", {**LABELS, "le": le})


def test_buckets_are_cumulative_and_boundaries_inclusive() -> None:
    registry = CollectorRegistry()
    metrics = InProcessMetrics(registry, (0.1, 0.3, 1.0))
    for duration in (0.05, 0.1, 0.3, 0.30001, 5.0):
        metrics.active_inc("GET")
        metrics.record("GET", "/r", "200", duration, 10, None)
    # A duration equal to an SLO threshold is inside it: the SLI reads an exact count.
    assert [bucket(registry, le) for le in ("0.1", "0.3", "1.0", "+Inf")] == [2, 3, 4, 5]
    count = registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", LABELS)
    total = registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_sum", LABELS)
    assert count == 5
    assert total is not None
    assert abs(total - 5.75001) < 1e-9


def test_exposition_matches_prometheus_client_spelling() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    metrics = InProcessMetrics(ours, names.DURATION_BUCKETS)
    reference = Histogram(
        names.HTTP_SERVER_DURATION,
        "Duration of HTTP server requests, until the response body ended.",
        list(LABELS),
        buckets=names.DURATION_BUCKETS,
        registry=theirs,
    )
    for duration in (0.001, 0.02, 0.5, 12.0):
        metrics.active_inc("GET")
        metrics.record("GET", "/r", "200", duration, 1, None)
        reference.labels(**LABELS).observe(duration)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [
            line
            for line in text.splitlines()
            if line.startswith(names.HTTP_SERVER_DURATION) and "_created" not in line
        ]

    assert lines(ours) == lines(theirs)


def test_exemplars_and_active_requests() -> None:
    registry = CollectorRegistry()
    metrics = InProcessMetrics(registry, (0.1, 1.0))
    for _ in range(3):
        metrics.active_inc("GET")
    metrics.record("GET", "/r", "200", 0.05, 1, "0af7651916cd43dd8448eb211c80319c")
    metrics.record("GET", "/r", "200", 5.0, 1, None)
    active = registry.get_sample_value(names.HTTP_SERVER_ACTIVE, {"http_request_method": "GET"})
    assert active == 1  # three started, two finished
    text = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.05' in text
    assert "trace_id" not in generate_latest(registry).decode()  # classic text has none


def test_concurrent_recording_loses_nothing() -> None:
    registry = CollectorRegistry()
    metrics = InProcessMetrics(registry, (0.1,))

    def work() -> None:
        for _ in range(2000):
            metrics.active_inc("GET")
            metrics.record("GET", "/r", "200", 0.01, 1, None)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", LABELS) == 8000
    active = registry.get_sample_value(names.HTTP_SERVER_ACTIVE, {"http_request_method": "GET"})
    assert active == 0
