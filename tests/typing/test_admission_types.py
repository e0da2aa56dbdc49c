"""Typed call sites of admission control and health: what mypy --strict checks users write."""

from __future__ import annotations

from buttress import CircuitBreaker
from buttress.middleware import (
    Admission,
    ASGIMiddleware,
    Health,
    MiddlewareOptions,
    RateLimit,
    RequestView,
    WSGIMiddleware,
)


async def asgi_app(scope: object, receive: object, send: object) -> None:
    raise NotImplementedError


def wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return [b""]


def tenant(request: RequestView) -> str | None:
    return request.header("X-Tenant")


def test_admission_and_health_type_check_at_the_call_site() -> None:
    admission = Admission(
        limit="aimd",
        routes={"/reports/{id}": "sheddable"},
        rate_limits=[
            RateLimit("api", rate=10, per=60, key="header", header="X-API-Key"),
            RateLimit("tenants", rate=100, key=tenant),
        ],
    )
    health = Health(breakers=[CircuitBreaker("payments")], admission=admission)
    ASGIMiddleware(asgi_app, admission=admission, health=health, metrics=False)
    WSGIMiddleware(wsgi_app, admission=Admission(limit=50), metrics=False)
    options: MiddlewareOptions = {"admission": admission, "health": health, "metrics": False}
    ASGIMiddleware(asgi_app, **options)
    assert admission.concurrency is not None
    assert admission.concurrency.mode == "aimd"
