"""The application of the exporter-fault test, served by uvicorn in its own process.

``buttress.configure()`` sets up OTLP export of spans, metrics and logs from the
``OTEL_*`` variables the test sets (a down or a slow endpoint, small queues). Each
request of ``GET /work`` makes one server span, as the middleware would, and writes one
log record. The SDK's own processor metrics (enabled with
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``) are read through an in-memory meter
provider set before configure(), and served at ``GET /stats``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import buttress

_reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
buttress.configure(service="reliability-otlp", log_level="ERROR", log_format="json")
_tracer = trace.get_tracer("reliability")
_log = logging.getLogger("reliability.work")

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
            _log.error("work.done")  # ERROR: the level configure() was given
            body = b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _stats() -> dict[str, int]:
    """Spans and log records the SDK's batch processors dropped, handed to the exporter,
    and now queue (``dropped``, ... for spans; ``log_dropped``, ... for logs)."""
    keys = ("dropped", "exported", "queued", "capacity")
    found = {prefix + key: 0 for prefix in ("", "log_") for key in keys}
    data = _reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    value = int(getattr(point, "value", 0))
                    for signal, prefix in (("span", ""), ("log", "log_")):
                        name = f"otel.sdk.processor.{signal}."
                        if metric.name == name + "processed":
                            key = "dropped" if "error.type" in attributes else "exported"
                            found[prefix + key] += value
                        elif metric.name == name + "queue.size":
                            found[prefix + "queued"] += value
                        elif metric.name == name + "queue.capacity":
                            found[prefix + "capacity"] += value
    return found
