"""The application of the exporter-fault test, served by uvicorn in its own process.

``buttress.configure()`` sets up OTLP export from the ``OTEL_*`` variables the test
sets (a down or a slow endpoint, a small queue). Each request of ``GET /work`` makes one
server span, as the middleware would. The SDK's own processor metrics (enabled with
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``) are read through an in-memory meter
provider set before configure(), and served at ``GET /stats``.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import buttress

_reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
buttress.configure(service="reliability-otlp", log_level="ERROR", log_format="json")
_tracer = trace.get_tracer("reliability")

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        body = json.dumps(_stats()).encode()
    else:
        with _tracer.start_as_current_span("GET /work", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("http.route", "/work")
            body = b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _stats() -> dict[str, int]:
    """Spans the SDK's batch processor dropped, handed to the exporter, and now queues."""
    found = {"dropped": 0, "exported": 0, "queued": 0, "capacity": 0}
    data = _reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    value = int(getattr(point, "value", 0))
                    if metric.name == "otel.sdk.processor.span.processed":
                        key = "dropped" if "error.type" in attributes else "exported"
                        found[key] += value
                    elif metric.name == "otel.sdk.processor.span.queue.size":
                        found["queued"] += value
                    elif metric.name == "otel.sdk.processor.span.queue.capacity":
                        found["capacity"] += value
    return found
