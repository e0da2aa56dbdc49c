"""The attacks on the trust boundary, replayed against real servers on 127.0.0.1.

A service (uvicorn running an ASGI app, gunicorn running a Flask app) calls a healthy
upstream that answers in 50 ms, through the buttress transport with a per-host breaker
that opens after five failures. An outside client then sends tiny deadlines, its own
request id, a trace to join and baggage to plant:

- five, and five hundred, requests with ``X-Buttress-Deadline: 0.02`` leave the breaker
  closed, and the next user's call goes through. Not trusted, the header is ignored; and
  from a trusted peer, the budget running out is the caller's ``DeadlineExceeded``, which
  the breaker does not count;
- a third-party host (127.0.0.2) receives none of the internal headers by default.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import buttress
from buttress.deadline import deadline_scope
from buttress.httpx import AsyncResilientTransport
from buttress.middleware import ASGIMiddleware
from buttress.telemetry import _names as names

from ._support import gunicorn, serve_asgi
from ._upstream import Upstream

DEADLINE = names.DEADLINE_HEADER
INTERNAL_HEADERS = ("x-request-id", DEADLINE.lower(), "traceparent", "tracestate", "baggage")
HOSTILE = {
    "X-Request-ID": "planted-id",
    DEADLINE: "5.000",  # a budget the calls fit in: this is about what travels
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=planted",
    "baggage": "role=admin," + ",".join(f"k{i}={'v' * 60}" for i in range(80)),
}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def third_party() -> Iterator[Upstream]:
    with Upstream(host="127.0.0.2") as server:
        yield server


def _asgi_service(
    upstream: Upstream, third: Upstream | None, **options: Any
) -> tuple[Any, dict[str, buttress.CircuitBreaker], CollectorRegistry]:
    breakers: dict[str, buttress.CircuitBreaker] = {}
    registry = CollectorRegistry()
    provider = TracerProvider()

    def breaker(name: str) -> buttress.CircuitBreaker:
        made = breakers[name] = buttress.CircuitBreaker(name, consecutive_failures=5)
        return made

    transport = AsyncResilientTransport(
        breaker=breaker,
        retry=None,
        internal_hosts=["127.0.0.1"],
        metrics_registry=registry,
        tracer_provider=provider,
    )
    client = httpx.AsyncClient(transport=transport, timeout=5.0)

    async def call(request: Request) -> JSONResponse:
        try:
            answer = await client.get(f"{upstream.url}/slow/0.05")
        except buttress.DeadlineExceeded:  # cut in flight, or spent before sending
            return JSONResponse({"outcome": "deadline"}, status_code=504)
        except buttress.CircuitOpen:
            return JSONResponse({"outcome": "open"}, status_code=503)
        return JSONResponse({"outcome": "ok", "status": answer.status_code})

    async def both(request: Request) -> JSONResponse:
        await client.get(f"{upstream.url}/ok")
        if third is not None:
            await client.get(f"{third.url}/ok")
        return JSONResponse({"outcome": "ok"})

    app = Starlette(routes=[Route("/call", call), Route("/third", both)])
    middleware = ASGIMiddleware(app, metrics=False, tracer_provider=provider, **options)
    return middleware, breakers, registry


async def _hammer(url: str, count: int, headers: dict[str, str]) -> list[int]:
    limit = asyncio.Semaphore(25)
    async with httpx.AsyncClient(timeout=30.0) as http:

        async def one() -> int:
            async with limit:
                response = await http.get(url, headers=headers)
            # Anything but an answer the service chose names what went wrong.
            assert response.status_code in (200, 504), response.text
            return response.status_code

        return await asyncio.gather(*(one() for _ in range(count)))


def _attack(url: str, count: int) -> list[int]:
    return asyncio.run(_hammer(f"{url}/call", count, {DEADLINE: "0.020"}))


@pytest.mark.parametrize("count", [5, 500])
@pytest.mark.parametrize("trust", [None, "any"])
def test_uvicorn_tiny_deadlines_leave_the_breaker_closed(
    upstream: Upstream, count: int, trust: str | None
) -> None:
    app, breakers, registry = _asgi_service(upstream, None, trusted_peers=trust)
    with serve_asgi(app) as url:
        statuses = _attack(url, count)
        after = httpx.get(f"{url}/call", timeout=10.0)  # another user, no deadline
    (breaker,) = breakers.values()
    assert breaker.state == "closed"
    assert after.status_code == 200
    assert after.json()["outcome"] == "ok"
    if trust is None:
        # Not a peer: the header was ignored, every call went through.
        assert statuses == [200] * count
    else:
        # A peer's 20 ms budget cannot wait for a 50 ms answer: the caller's failure,
        # counted apart from the dependency's and never in the client histogram.
        assert set(statuses) <= {200, 504}
        stopped = sum(
            registry.get_sample_value(
                names.HTTP_CLIENT_DEADLINE_EXCEEDED,
                {names.LABEL_SERVER_ADDRESS: "127.0.0.1", names.LABEL_REASON: reason},
            )
            or 0
            for reason in (names.DEADLINE_CUT, names.DEADLINE_SPENT)
        )
        assert stopped == statuses.count(504)
        assert statuses.count(504) >= count // 2
        failed = registry.get_sample_value(
            f"{names.HTTP_CLIENT_DURATION}_count",
            {
                names.LABEL_METHOD: "GET",
                names.LABEL_SERVER_ADDRESS: "127.0.0.1",
                names.LABEL_STATUS: "",
            },
        )
        assert failed is None


@pytest.fixture
def gunicorn_env(upstream: Upstream, third_party: Upstream) -> dict[str, str]:
    return {
        **os.environ,
        "UPSTREAM": upstream.url,
        "THIRD_PARTY": third_party.url,
        # gunicorn closes a keep-alive connection idle for 2 s by default; a pooled
        # connection reused just then fails with ReadError under a loaded machine, a race
        # between client and server that says nothing of the service.
        "GUNICORN_CMD_ARGS": "--threads 16 --keep-alive 30",
    }


@pytest.mark.parametrize("trust", [None, "any"])
def test_gunicorn_tiny_deadlines_leave_the_breaker_closed(
    gunicorn_env: dict[str, str], trust: str | None
) -> None:
    env = {**gunicorn_env, "TRUST": trust or ""}
    with gunicorn("boundary_app:app", env) as url:
        for count in (5, 500):
            statuses = _attack(url, count)
            assert set(statuses) <= ({200} if trust is None else {200, 504})
            states = httpx.get(f"{url}/breakers").json()
            assert set(states.values()) == {"closed"}, states
            after = httpx.get(f"{url}/call", timeout=10.0)
            assert (after.status_code, after.json()["outcome"]) == (200, "ok")


def _internal_headers(seen: dict[str, str]) -> set[str]:
    return {h for h in INTERNAL_HEADERS if h in seen}


def test_uvicorn_a_third_party_host_gets_no_internal_headers(
    upstream: Upstream, third_party: Upstream
) -> None:
    # Even a service that trusts its callers keeps their words inside the border.
    app, _, _ = _asgi_service(upstream, third_party, trusted_peers="any")
    with serve_asgi(app) as url:
        assert httpx.get(f"{url}/third", headers=HOSTILE).status_code == 200
    (outside,) = third_party.seen
    assert _internal_headers(outside.headers) == set()
    (inside,) = upstream.seen
    assert _internal_headers(inside.headers) == set(INTERNAL_HEADERS)
    assert inside.headers["x-request-id"] == "planted-id"  # a trusted peer's id travels
    # Baggage travels inside, cut to the W3C limits (64 members, 8,192 bytes).
    members = inside.headers["baggage"].split(",")
    assert len(members) == 64
    assert members[0] == "role=admin"


def test_gunicorn_a_third_party_host_gets_no_internal_headers(
    gunicorn_env: dict[str, str], upstream: Upstream, third_party: Upstream
) -> None:
    with gunicorn("boundary_app:app", gunicorn_env) as url:
        assert httpx.get(f"{url}/third", headers=HOSTILE).status_code == 200
    (outside,) = third_party.seen
    assert _internal_headers(outside.headers) == set()
    # Not trusted: nothing the client sent travels, but our own id and trace do.
    (inside,) = upstream.seen
    assert inside.headers["x-request-id"] != "planted-id"
    assert "traceparent" in inside.headers
    assert "0af7651916cd43dd8448eb211c80319c" not in inside.headers["traceparent"]
    assert "baggage" not in inside.headers
    assert DEADLINE.lower() not in inside.headers


async def test_a_default_transport_sends_internal_headers_nowhere(upstream: Upstream) -> None:
    transport = AsyncResilientTransport(metrics_registry=CollectorRegistry())
    with buttress.bound_correlation_id("ours"), deadline_scope(5.0):
        async with httpx.AsyncClient(transport=transport) as http:
            await http.get(f"{upstream.url}/ok")
    (seen,) = upstream.seen
    assert _internal_headers(seen.headers) == set()


async def test_trace_context_to_every_host_when_asked(third_party: Upstream) -> None:
    from opentelemetry import baggage, context

    transport = AsyncResilientTransport(metrics_registry=CollectorRegistry(), propagate_trace="all")
    token = context.attach(baggage.set_baggage("role", "admin"))
    try:
        with buttress.bound_correlation_id("ours"):
            async with httpx.AsyncClient(transport=transport) as http:
                await http.get(f"{third_party.url}/ok")
    finally:
        context.detach(token)
    (seen,) = third_party.seen
    # The trace goes out; our id and baggage stay in.
    assert "baggage" not in seen.headers
    assert "x-request-id" not in seen.headers
