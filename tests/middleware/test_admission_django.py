"""Admission control and health in the Django shell, sync and async, in process.

The settings come from tests/middleware/django_app.py; each test builds its own
``DjangoMiddleware`` under ``override_settings`` so the shared project is not changed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from prometheus_client import CollectorRegistry

from buttress import CircuitBreaker
from buttress.middleware import Admission, DjangoMiddleware, Health, RateLimit, TrustedPeers

from . import django_app

assert django_app  # imported for its settings

factory = RequestFactory()


def _settings(**options: Any) -> dict[str, Any]:
    return {
        "metrics_registry": CollectorRegistry(),
        "trusted_peers": TrustedPeers(networks=["127.0.0.1/32"]),
        **options,
    }


def test_sync_django_sheds_over_the_limit_and_gives_the_permit_back() -> None:
    entered = threading.Event()
    release = threading.Event()

    def view(request: HttpRequest) -> HttpResponse:
        entered.set()
        release.wait(10)
        return HttpResponse(b"ok")

    admission = Admission(limit=1)
    with override_settings(BUTTRESS_MIDDLEWARE=_settings(admission=admission)):
        middleware = DjangoMiddleware(view)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(middleware(factory.get("/a")).status_code)
    )
    worker.start()
    assert entered.wait(10)
    shed = middleware(factory.get("/a"))
    assert shed.status_code == 503
    assert shed["Retry-After"] == "1"
    release.set()
    worker.join(10)
    assert answers == [200]
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0


def test_sync_django_refuses_hopeless_deadlines_and_rate_limited_clients() -> None:
    seen: list[str] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.path)
        return HttpResponse(b"ok")

    admission = Admission(rate_limits=[RateLimit("d", rate=1, per=60)])
    with override_settings(BUTTRESS_MIDDLEWARE=_settings(admission=admission)):
        middleware = DjangoMiddleware(view)
    assert middleware(factory.get("/a", HTTP_X_BUTTRESS_DEADLINE="0")).status_code == 504
    assert middleware(factory.get("/a")).status_code == 200
    refused = middleware(factory.get("/a"))
    assert refused.status_code == 429
    assert refused["RateLimit-Policy"] == '"d";q=1;w=60'
    assert refused["RateLimit"].startswith('"d";r=0;t=')
    assert seen == ["/a"]


async def test_async_django_sheds_and_answers_health() -> None:
    gate = asyncio.Event()

    async def view(request: HttpRequest) -> HttpResponse:
        await gate.wait()
        return HttpResponse(b"ok")

    admission = Admission(limit=1)
    breaker = CircuitBreaker("ledger")
    health = Health(breakers=[breaker], admission=admission)
    with override_settings(BUTTRESS_MIDDLEWARE=_settings(admission=admission, health=health)):
        middleware = DjangoMiddleware(view)
    first = asyncio.ensure_future(middleware(factory.get("/a")))
    for _ in range(100):
        if admission.concurrency is not None and admission.concurrency.in_flight == 1:
            break
        await asyncio.sleep(0)
    shed = await middleware(factory.get("/a"))
    assert shed.status_code == 503
    ready = await middleware(factory.get("/readyz"))
    assert ready.status_code == 200
    body = json.loads(ready.content)
    assert body["components"]["breaker:ledger"]["status"] == "UP"
    assert body["components"]["admission:inbound"]["details"]["in_flight"] == 1
    breaker.force_open()
    assert (await middleware(factory.get("/readyz"))).status_code == 503
    assert (await middleware(factory.get("/livez"))).status_code == 200
    gate.set()
    assert (await first).status_code == 200
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0
