"""Oracle: OpenTelemetry's own instrumentations on the same requests as buttress's.

opentelemetry-instrumentation-asgi, -flask and -django (stable HTTP conventions opted in)
each serve the same requests as the buttress middleware; every attribute they put on
their server span must be on ours with the same value, unless docs/middleware.md lists it
as a deliberate difference (the table "Compared with OpenTelemetry's instrumentations").
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from buttress.middleware import ASGIMiddleware, WSGIMiddleware

from ._support import call_asgi

DOC = Path(__file__).resolve().parents[2] / "docs" / "middleware.md"
# (method, path, query)
REQUESTS = [
    ("GET", "/users/7", "q=1&token=abc"),
    ("GET", "/missing", ""),
    ("POST", "/users/7", ""),
    ("GET", "/boom", ""),
    ("FOO", "/users/7", ""),
]


def documented_differences() -> dict[str, set[str]]:
    """instrumentation -> attributes the docs' comparison table lists as different."""
    section = DOC.read_text().split("## Compared with OpenTelemetry's instrumentations", 1)[1]
    section = section.split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)` \| ([^|]+) \|", line)
        if match:
            for who in re.findall(r"`([^`]+)`", match[2]):
                found.setdefault(who, set()).add(match[1])
    return found


@pytest.fixture(autouse=True)
def stable_conventions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The instrumentations read the opt-in once per process: read it again for this test.
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    monkeypatch.setattr(_OpenTelemetrySemanticConventionStability, "_initialized", False)
    _OpenTelemetrySemanticConventionStability._initialize()  # type: ignore[no-untyped-call]
    yield
    monkeypatch.undo()
    _OpenTelemetrySemanticConventionStability._initialized = False


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _servers(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


def _compare(instrumentation: str, ours: list[ReadableSpan], theirs: list[ReadableSpan]) -> None:
    assert len(ours) == len(theirs) == len(REQUESTS)
    allowed = documented_differences().get(instrumentation, set())
    for request, mine, other in zip(REQUESTS, ours, theirs, strict=True):
        mine_attributes = dict(mine.attributes or {})
        differing = {
            key: (value, mine_attributes.get(key))
            for key, value in (other.attributes or {}).items()
            if mine_attributes.get(key) != value and key not in allowed
        }
        assert differing == {}, (request, differing)
        assert mine.status.status_code is other.status.status_code, request


async def test_asgi() -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def user(request: Request) -> PlainTextResponse:
        return PlainTextResponse("user")

    async def boom(request: Request) -> PlainTextResponse:
        raise KeyError("boom")

    app = Starlette(routes=[Route("/users/{id}", user), Route("/boom", boom)])
    mine, mine_spans = _provider()
    other, other_spans = _provider()
    ours = ASGIMiddleware(app, tracer_provider=mine, metrics_registry=CollectorRegistry())
    theirs = OpenTelemetryMiddleware(app, tracer_provider=other)
    for method, path, query in REQUESTS:
        for stack in (ours, theirs):
            headers = [(b"user-agent", b"oracle/1")]
            with contextlib.suppress(KeyError):  # /boom: both let it through, after the 500
                await call_asgi(stack, path, method=method, query=query.encode(), headers=headers)
    _compare("opentelemetry-instrumentation-asgi", _servers(mine_spans), _servers(other_spans))


def _flask_app() -> Any:
    from flask import Flask

    app = Flask("oracle")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        return "user"

    @app.get("/boom")
    def boom() -> str:
        raise KeyError("boom")

    return app


def test_flask() -> None:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    mine, mine_spans = _provider()
    other, other_spans = _provider()
    ours = _flask_app()
    ours.wsgi_app = WSGIMiddleware(
        ours.wsgi_app, tracer_provider=mine, metrics_registry=CollectorRegistry()
    )
    theirs = _flask_app()
    FlaskInstrumentor().instrument_app(theirs, tracer_provider=other)  # type: ignore[no-untyped-call]
    try:
        for method, path, query in REQUESTS:
            for stack in (ours, theirs):
                stack.test_client().open(
                    f"{path}?{query}" if query else path,
                    method=method,
                    headers={"User-Agent": "oracle/1"},
                    environ_base={"REMOTE_PORT": "50000"},
                    buffered=True,
                ).close()
    finally:
        FlaskInstrumentor().uninstrument_app(theirs)  # type: ignore[no-untyped-call]
    _compare("opentelemetry-instrumentation-flask", _servers(mine_spans), _servers(other_spans))


def test_django() -> None:
    from django.test import Client, override_settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from . import django_app

    other, other_spans = _provider()
    django_app.exporter.clear()
    requests = [(m, "/boom" if p == "/boom" else "/users/7/", q) for m, p, q in REQUESTS]
    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(tracer_provider=other)
    try:
        otel = [m for m in _settings_middleware() if "opentelemetry" in m]
        for middleware in (["buttress.middleware.DjangoMiddleware"], otel):
            with override_settings(MIDDLEWARE=middleware):
                client = Client(
                    raise_request_exception=False, HTTP_USER_AGENT="oracle/1", REMOTE_PORT="50000"
                )
                for method, path, query in requests:
                    client.generic(method, f"{path}?{query}" if query else path)
    finally:
        instrumentor.uninstrument()
    ours = _servers(django_app.exporter)
    _compare("opentelemetry-instrumentation-django", ours, _servers(other_spans))


def _settings_middleware() -> list[str]:
    from django.conf import settings

    return list(settings.MIDDLEWARE)
