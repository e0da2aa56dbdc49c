"""A minimal Django project in one module: settings, views and URLs, for the tests.

Django settings are process-wide, so the telemetry sinks live here and tests reset them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import include, path
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from buttress.deadline import remaining

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
registry = CollectorRegistry()

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="buttress-tests-only",
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=["buttress.middleware.DjangoMiddleware"],
        BUTTRESS_MIDDLEWARE={
            "service": "django-test",
            "tracer_provider": provider,
            "metrics_registry": registry,
            "metrics_path": "/metrics",
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


class Kaput(RuntimeError):
    pass


def user(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


def order(request: HttpRequest, ref: str) -> HttpResponse:
    return HttpResponse(f"order {ref}")


def budget(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"left": remaining()})


async def abudget(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"left": remaining()})


def boom(request: HttpRequest) -> HttpResponse:
    raise Kaput("no")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(3):
            yield f"row {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"async row {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("astream", astream),
    path("users/<int:pk>/", user),
    path("api/", include([path("orders/<slug:ref>", order)])),
    path("boom", boom),
    path("budget", budget),
    path("abudget", abudget),
    path("stream", stream),
]
