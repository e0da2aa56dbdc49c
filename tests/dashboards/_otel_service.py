"""A service instrumented only by OpenTelemetry: ``python _otel_service.py PORT``.

A Starlette app behind ``opentelemetry-instrumentation-asgi``'s middleware, its metrics
exported by ``opentelemetry-exporter-prometheus`` on ``/metrics``: no buttress in it. It
runs in its own process so its global meter provider and Prometheus registry touch
nothing else. Started with ``OTEL_SEMCONV_STABILITY_OPT_IN=http``, the instrumentation records the
stable ``http.server.request.duration``, which Prometheus sees as
``http_server_request_duration_seconds`` without an ``http_route`` label.
"""

from __future__ import annotations

import sys

import uvicorn
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

# The latency SLO of the live test reads the 0.3 s bucket: give the histogram that boundary.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def fail(request: Request) -> Response:
    return PlainTextResponse("failed", status_code=500)


async def missing(request: Request) -> Response:
    return PlainTextResponse("no such item", status_code=404)


def build() -> OpenTelemetryMiddleware:
    reader = PrometheusMetricReader()
    view = View(
        instrument_name="http.server.request.duration",
        aggregation=ExplicitBucketHistogramAggregation(BUCKETS),
    )
    provider = MeterProvider(
        metric_readers=[reader],
        views=[view],
        resource=Resource.create({"service.name": "otel-shop"}),
    )
    metrics.set_meter_provider(provider)
    app = Starlette(
        routes=[
            Route("/", ok),
            Route("/items/{item_id}", ok),
            Route("/fail", fail),
            Route("/missing", missing),
            Mount("/metrics", make_asgi_app()),
        ]
    )
    return OpenTelemetryMiddleware(app, meter_provider=provider, exclude_spans=["receive", "send"])


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
