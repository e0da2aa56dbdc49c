"""The demo service: a checkout API behind the middleware, calling the upstream through
the httpx transport (retry, circuit breaker, bulkhead, a span per attempt) and a fallback."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import buttress
import buttress.slo
from buttress.httpx import RETRY_ON, AsyncResilientTransport
from buttress.middleware import ASGIMiddleware

OBJECTIVE = 0.99
LATENCY_THRESHOLD = 0.5  # seconds; a bucket boundary of the duration histogram
ATTEMPT_TIMEOUT = 0.45  # seconds for one attempt's answer: under the latency threshold


class UpstreamFailed(Exception):
    """The upstream answered with a server error."""


def demo_slos() -> list[buttress.slo.SLO]:
    """The service's SLOs: 99 % of quotes succeed, 99 % of them within half a second."""
    return [
        buttress.slo.SLO(
            "quote-availability",
            service="checkout",
            objective=OBJECTIVE,
            routes=["/quote/{sku}"],
            description="Quotes that do not fail with a server error",
        ),
        buttress.slo.SLO(
            "quote-latency",
            service="checkout",
            objective=OBJECTIVE,
            threshold=LATENCY_THRESHOLD,
            routes=["/quote/{sku}"],
            description="Quotes answered within 500 ms",
        ),
    ]


def build_service(upstream_url: str) -> tuple[Any, httpx.AsyncClient]:
    """The ASGI app (middleware included) and the client it calls the upstream with.

    The client sends through ``AsyncResilientTransport``: each attempt is a client span
    carrying the trace context to pricing, behind the transport's retry, breaker and
    bulkhead. Outermost first: a call the open breaker refuses falls back to the last
    known price; the retry tries upstream errors again within its budget (a read timeout
    is not retried: a slow upstream needs no extra work); the breaker counts errors,
    timeouts and slow calls; the bulkhead bounds concurrency; httpx's read timeout bounds
    each attempt, so that a timeout counts as the breaker's failure.
    """
    breaker = buttress.CircuitBreaker(
        "pricing",
        consecutive_failures=None,
        failure_rate=0.5,
        slow_call_rate=0.5,
        slow_call_duration=0.25,
        window=20,
        window_type="count",
        minimum_calls=10,
        reset_timeout=2.0,
        half_open_permits=3,
    )
    bulkhead = buttress.Bulkhead("pricing", max_concurrent=16, max_waiting=16, wait_timeout=0.2)
    transport = AsyncResilientTransport(
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32)
        ),
        retry=buttress.retry(
            on=RETRY_ON,
            attempts=3,
            deadline=ATTEMPT_TIMEOUT * 2,
            wait_initial=0.02,
            wait_max=0.2,
            name="pricing",
        ),
        breaker=breaker,
        bulkhead=bulkhead,
        name="pricing",
        # Pricing is ours (on loopback): the trace, the id and the budget may travel there.
        internal_hosts=["127.0.0.1", "localhost"],
    )
    client = httpx.AsyncClient(
        base_url=upstream_url, transport=transport, timeout=httpx.Timeout(ATTEMPT_TIMEOUT)
    )

    @buttress.fallback(None, on=buttress.CircuitOpen, name="pricing")
    async def fetch_price(sku: str) -> dict[str, Any] | None:
        response = await client.get(f"/price/{sku}")
        if response.status_code >= 500:  # after the transport's last attempt
            raise UpstreamFailed(f"upstream answered {response.status_code}")
        data: dict[str, Any] = response.json()
        return data

    last_known: dict[str, dict[str, Any]] = {}

    async def quote(request: Request) -> JSONResponse:
        sku = request.path_params["sku"]
        try:
            price = await fetch_price(sku)
        except (buttress.TimedOut, httpx.TimeoutException):
            return JSONResponse({"error": "pricing timed out"}, status_code=504)
        except buttress.BulkheadFull:
            return JSONResponse({"error": "pricing is saturated"}, status_code=503)
        except (UpstreamFailed, httpx.HTTPError):
            return JSONResponse({"error": "pricing failed"}, status_code=502)
        if price is None:  # the breaker is open: answer from the last known price
            cached = last_known.get(sku)
            if cached is None:
                return JSONResponse({"error": "pricing unavailable"}, status_code=503)
            return JSONResponse({**cached, "degraded": True})
        last_known[sku] = price
        return JSONResponse(price)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/quote/{sku}", quote), Route("/healthz", health)])
    wrapped = ASGIMiddleware(
        app,
        service="checkout",
        slos=demo_slos(),
        metrics_path="/metrics",
        exclude=["/healthz", "/metrics"],
    )
    return wrapped, client
