"""The in-process HTTP instruments expose what prometheus_client's own would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from buttress.middleware import ASGIMiddleware
from buttress.middleware._metrics import InProcessMetrics
from buttress.telemetry import _names as names
from buttress.telemetry._metrics import set_target_registry, target_registry
from buttress.testing import capture_metrics

from ._support import call_asgi

LABELS = {
    "http_request_method": "GET",
    "http_route": "/r",
    "http_response_status_code": "200",
    "error_type": "",
}


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


# --- which registry the middleware records into --------------------------------------------


def _ok_app(during: Callable[[], object] = lambda: None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        during()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _requests(registry: CollectorRegistry) -> float:
    labels = {**LABELS, "http_route": names.ROUTE_UNMATCHED}
    return registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", labels) or 0.0


async def test_without_a_registry_the_middleware_follows_the_configured_one() -> None:
    # Built before the target is chosen, as an app built at import time before configure().
    app = ASGIMiddleware(_ok_app(), tracing=False, metrics_path="/metrics")
    with capture_metrics() as captured:
        await call_asgi(app, "/")
        scraped = await call_asgi(app, "/metrics")
    assert _requests(captured.metrics_registry) == 1
    assert b"http_server_request_duration_seconds_count" in scraped[1]["body"]
    later = CollectorRegistry()
    previous = target_registry()
    set_target_registry(later)  # what configure(metrics_registry=later) does
    try:
        await call_asgi(app, "/")
    finally:
        set_target_registry(previous)
    assert _requests(later) == 1
    assert _requests(captured.metrics_registry) == 1


async def test_an_explicit_registry_is_kept() -> None:
    mine = CollectorRegistry()
    app = ASGIMiddleware(_ok_app(), tracing=False, metrics_registry=mine)
    with capture_metrics() as captured:
        await call_asgi(app, "/")
    assert _requests(mine) == 1
    assert _requests(captured.metrics_registry) == 0


async def test_a_request_ends_in_the_registry_it_started_in() -> None:
    switched = CollectorRegistry()
    app = ASGIMiddleware(_ok_app(lambda: set_target_registry(switched)), tracing=False)
    previous = target_registry()
    with capture_metrics() as captured:
        try:
            await call_asgi(app, "/")
        finally:
            set_target_registry(previous)
    # Counted in flight in one registry, finished in the same: the gauge is back to 0.
    assert _requests(captured.metrics_registry) == 1
    assert _requests(switched) == 0
    active = captured.metrics_registry.get_sample_value(
        names.HTTP_SERVER_ACTIVE, {"http_request_method": "GET"}
    )
    assert active == 0
