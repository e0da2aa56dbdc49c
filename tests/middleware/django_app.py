"""A minimal Django project in one module: settings, views and URLs, for the tests.

Django settings are process-wide, so the telemetry sinks live here and tests reset them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import django
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import include, path, re_path
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from buttress.deadline import remaining
from buttress.middleware import TrustedPeers

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
        MIDDLEWARE=["buttress.middleware.DjangoMiddleware", f"{__name__}.raise_below"],
        BUTTRESS_MIDDLEWARE={
            "service": "django-test",
            "tracer_provider": provider,
            "metrics_registry": registry,
            "metrics_path": "/metrics",
            "metrics_max_age": 0,  # every scrape sees the requests before it
            # The tests' clients are peers on loopback: their ids and deadlines count.
            "trusted_peers": TrustedPeers(networks=["127.0.0.1/32"]),
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


class Kaput(RuntimeError):
    pass


def raise_below(get_response: Any) -> Any:
    """A middleware under buttress's that fails on /below: Django answers it with a 500."""

    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> Any:
            if request.path == "/below":
                raise Kaput("in a middleware")
            return await get_response(request)

        return markcoroutinefunction(amiddleware)

    def middleware(request: HttpRequest) -> Any:
        if request.path == "/below":
            raise Kaput("in a middleware")
        return get_response(request)

    return middleware


raise_below.sync_capable = True  # type: ignore[attr-defined]
raise_below.async_capable = True  # type: ignore[attr-defined]


def user(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"id": pk})


def order(request: HttpRequest, ref: str) -> HttpResponse:
    return HttpResponse(f"order {ref}")


def article(request: HttpRequest, year: str) -> HttpResponse:
    return HttpResponse(f"articles of {year}")


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


async def aslow(request: HttpRequest) -> HttpResponse:
    for _ in range(200):  # at most 2 s, unless the client leaves first
        await asyncio.sleep(0.01)
    return HttpResponse("late")


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"async row {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("astream", astream),
    path("aslow", aslow),
    path("users/<int:pk>/", user),
    path("api/", include([path("orders/<slug:ref>", order)])),
    path("boom", boom),
    path("budget", budget),
    path("abudget", abudget),
    path("stream", stream),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", article),
    re_path(r"^legacy/", include([re_path(r"^items/(?P<ref>\w+)\.json$", order)])),
]
