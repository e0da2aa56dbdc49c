"""AsyncResilientTransport against a real upstream on 127.0.0.1: the twin behaves alike."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.trace import SpanKind

import buttress
from buttress import Bulkhead, CircuitBreaker
from buttress.deadline import deadline_scope
from buttress.events import RetryFinished, TimeoutExpired
from buttress.httpx import AsyncResilientTransport
from buttress.testing import FakeClock, capture_events
from tests._services import free_port

from ._transport_support import Tracing, sample, with_retry
from ._upstream import Upstream


def client(
    tracing: Tracing, clock: FakeClock | None = None, **options: object
) -> httpx.AsyncClient:
    clock = clock or FakeClock()
    options.setdefault("internal_hosts", ["127.0.0.1"])  # the test upstream is one of ours
    transport = AsyncResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        clock=clock,
        **with_retry(options, clock, clock.async_sleep),
    )
    return httpx.AsyncClient(transport=transport)


async def test_get_is_retried_until_it_succeeds(tracing: Tracing, upstream: Upstream) -> None:
    async with client(tracing) as http:
        with capture_events() as events:
            response = await http.get(f"{upstream.url}/flaky/a/2")
    assert response.status_code == 200
    assert upstream.hits("/flaky/a/2") == 3
    assert events[-1] == RetryFinished(f"httpx:127.0.0.1:{upstream.port}", 3, "success", "")


async def test_post_is_sent_once_unless_keyed(tracing: Tracing, upstream: Upstream) -> None:
    async with client(tracing) as http:
        plain = await http.post(f"{upstream.url}/flaky/p/1", content=b"x")
        keyed = await http.post(
            f"{upstream.url}/flaky/q/1", content=b"x", headers={"Idempotency-Key": "k"}
        )
    assert (plain.status_code, keyed.status_code) == (503, 200)
    assert (upstream.hits("/flaky/p/1"), upstream.hits("/flaky/q/1")) == (1, 2)


async def test_the_last_response_is_returned_readable(tracing: Tracing, upstream: Upstream) -> None:
    async with client(tracing, attempts=3) as http:
        response = await http.get(f"{upstream.url}/status/502")
    assert response.status_code == 502
    assert response.text == "status 502"
    assert upstream.hits("/status/502") == 3


async def test_connection_errors_are_retried_then_raised(tracing: Tracing) -> None:
    http = client(tracing, attempts=2)
    async with http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")
    assert len(tracing.spans(SpanKind.CLIENT)) == 2


async def test_retry_after_is_the_wait(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    async with client(tracing, clock, attempts=2) as http:
        await http.get(f"{upstream.url}/status/503?retry_after=2")
    assert clock.sleeps == [2.0]


async def test_server_span_is_a_child_of_the_client_span(
    tracing: Tracing, upstream: Upstream
) -> None:
    tracer = tracing.provider.get_tracer("test")
    async with client(tracing) as http:
        with tracer.start_as_current_span("caller"), buttress.bound_correlation_id("id-7"):
            await http.get(f"{upstream.url}/flaky/t/1")
    clients = tracing.spans(SpanKind.CLIENT)
    servers = tracing.spans(SpanKind.SERVER)
    assert len(clients) == 2
    assert len(servers) == 2
    for client_span, server_span in zip(clients, servers, strict=True):
        assert server_span.parent is not None
        assert server_span.parent.span_id == client_span.context.span_id
    assert clients[1].attributes is not None
    assert clients[1].attributes["http.request.resend_count"] == 1
    assert [s.headers["x-request-id"] for s in upstream.seen] == ["id-7", "id-7"]


async def test_concurrent_calls_keep_their_own_context(
    tracing: Tracing, upstream: Upstream
) -> None:
    tracer = tracing.provider.get_tracer("test")

    async def one(http: httpx.AsyncClient, n: int) -> tuple[int, int]:
        with tracer.start_as_current_span(f"caller {n}") as caller:
            with buttress.bound_correlation_id(f"id-{n}"):
                await http.get(f"{upstream.url}/ok?n={n}")
            return n, caller.get_span_context().trace_id

    async with client(tracing) as http:
        pairs = await asyncio.gather(*(one(http, n) for n in range(20)))
    sent = {s.path: s.headers for s in upstream.seen}
    for n, trace_id in pairs:
        headers = sent[f"/ok?n={n}"]
        assert headers["x-request-id"] == f"id-{n}"
        assert headers["traceparent"].split("-")[1] == format(trace_id, "032x")


async def test_the_deadline_travels_and_a_spent_one_sends_nothing(
    tracing: Tracing, upstream: Upstream
) -> None:
    clock = FakeClock()
    async with client(tracing, clock) as http:
        with deadline_scope(1.5, clock=clock):
            await http.get(f"{upstream.url}/ok")
            clock.advance(1.5)
            with capture_events() as events, pytest.raises(buttress.TimedOut):
                await http.get(f"{upstream.url}/ok")
    assert [s.headers["x-buttress-deadline"] for s in upstream.seen] == ["1.500"]
    assert events == [TimeoutExpired(f"httpx:127.0.0.1:{upstream.port}", 0.0)]


async def test_an_async_timeout_caps_a_slow_upstream(tracing: Tracing, upstream: Upstream) -> None:
    transport = AsyncResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        internal_hosts=["127.0.0.1"],
    )
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(buttress.TimedOut):
            await buttress.timeout(0.2).call(http.get, f"{upstream.url}/slow/3")
    assert upstream.seen[0].headers["x-buttress-deadline"].startswith("0.")
    labels = {"http_request_method": "GET", "server_address": "127.0.0.1"}
    assert sample(tracing.metrics, "http_client_active_requests", **labels) == 0
    (span,) = tracing.spans(SpanKind.CLIENT)
    assert span.attributes is not None
    assert span.attributes["error.type"] == "CancelledError"


async def test_every_attempt_is_timed(tracing: Tracing, upstream: Upstream) -> None:
    async with client(tracing) as http:
        await http.get(f"{upstream.url}/flaky/m/1")
    labels = {"http_request_method": "GET", "server_address": "127.0.0.1"}
    count = "http_client_request_duration_seconds_count"
    assert sample(tracing.metrics, count, **labels, http_response_status_code="503") == 1
    assert sample(tracing.metrics, count, **labels, http_response_status_code="200") == 1


async def test_the_breaker_opens_and_recovers(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()

    def breaker(name: str) -> CircuitBreaker:
        return CircuitBreaker(name, consecutive_failures=2, reset_timeout=5, clock=clock)

    async with client(tracing, clock, breaker=breaker, attempts=2) as http:
        response = await http.get(f"{upstream.url}/status/503")  # two attempts, two failures
        assert response.status_code == 503
        with pytest.raises(buttress.CircuitOpen):
            await http.get(f"{upstream.url}/ok")
        clock.advance(5)
        assert (await http.get(f"{upstream.url}/ok")).status_code == 200
    assert upstream.hits("/status/503") == 2
    assert upstream.hits("/ok") == 1


async def test_a_full_bulkhead_refuses_without_sending(
    tracing: Tracing, upstream: Upstream
) -> None:
    shared = Bulkhead("outbound", max_concurrent=1)
    async with client(tracing, bulkhead=shared) as http:
        async with shared:
            with pytest.raises(buttress.BulkheadFull):
                await http.get(f"{upstream.url}/ok")
        assert (await http.get(f"{upstream.url}/ok")).status_code == 200
    assert upstream.hits("/ok") == 1
