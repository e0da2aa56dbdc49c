"""The apps bench_e2e.py serves under uvicorn and gunicorn, one stack per server process.

Chosen by environment variables the benchmark sets: ``E2E_STACK`` (bare, floor, buttress,
peers, pfi), ``E2E_SAMPLING`` (the ratio of root requests sampled) and ``E2E_ROUTES``. Spans go
through the SDK's batch processor to an exporter that drops them, like bench_middleware.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _settings() -> tuple[str, TracerProvider, int]:
    # Access lines are on but not emitted (INFO is not enabled), like the peers, which have none.
    logging.getLogger("buttress.access").setLevel(logging.WARNING)
    stack = os.environ.get("E2E_STACK", "bare")
    ratio = float(os.environ.get("E2E_SAMPLING", "1.0"))
    routes = int(os.environ.get("E2E_ROUTES", "1"))
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=100_000))
    return stack, provider, routes


def _floor_asgi(app: Any, provider: TracerProvider) -> Any:
    """An SDK server span with ten attributes around the app, nothing else."""
    tracer = provider.get_tracer("floor")

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        span = tracer.start_span("GET", kind=SpanKind.SERVER)
        span.set_attributes({f"attr.{i}": i for i in range(10)})
        try:
            await app(scope, receive, send)
        finally:
            span.end()

    return middleware


def _floor_wsgi(app: Any, provider: TracerProvider) -> Any:
    tracer = provider.get_tracer("floor")

    def middleware(environ: Any, start_response: Any) -> Any:
        span = tracer.start_span("GET", kind=SpanKind.SERVER)
        span.set_attributes({f"attr.{i}": i for i in range(10)})
        try:
            yield from app(environ, start_response)
        finally:
            span.end()

    return middleware


def asgi_app() -> Any:
    """A Starlette app of ``E2E_ROUTES`` routes wrapped in the ``E2E_STACK`` middleware."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    stack, provider, routes = _settings()

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route(f"/r{i}/items/{{item_id}}", endpoint) for i in range(routes)])
    if stack == "buttress":
        from buttress.middleware import ASGIMiddleware

        app.add_middleware(
            ASGIMiddleware, tracer_provider=provider, metrics_registry=CollectorRegistry()
        )
    elif stack in ("peers", "pfi"):
        from asgi_correlation_id import CorrelationIdMiddleware
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        if stack == "peers":
            from starlette_exporter import PrometheusMiddleware

            app.add_middleware(PrometheusMiddleware, group_paths=True)
        else:
            from prometheus_fastapi_instrumentator import Instrumentator

            Instrumentator(registry=CollectorRegistry()).instrument(app)
        app.add_middleware(
            OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
        app.add_middleware(CorrelationIdMiddleware)
    elif stack == "floor":
        return _floor_asgi(app, provider)
    elif stack != "bare":
        raise ValueError(f"unknown E2E_STACK {stack!r}")
    return app


def wsgi_app() -> Any:
    """A Flask app of ``E2E_ROUTES`` routes wrapped in the ``E2E_STACK`` middleware."""
    from flask import Flask

    stack, provider, routes = _settings()
    app = Flask("bench")

    def endpoint(item_id: str) -> str:
        return "ok"

    for i in range(routes):
        app.add_url_rule(f"/r{i}/items/<item_id>", f"e{i}", endpoint)
    if stack == "buttress":
        from buttress.middleware import WSGIMiddleware

        app.wsgi_app = WSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, tracer_provider=provider, metrics_registry=CollectorRegistry()
        )
    elif stack == "peers":
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, tracer_provider=provider
        )
    elif stack == "floor":
        app.wsgi_app = _floor_wsgi(app.wsgi_app, provider)  # type: ignore[method-assign]
    elif stack != "bare":
        raise ValueError(f"unknown E2E_STACK {stack!r}")
    return app
