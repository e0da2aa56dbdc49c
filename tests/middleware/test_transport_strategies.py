"""The transports' hedge= and throttle= options, against a real upstream on 127.0.0.1.

The slow attempt is held by the upstream until the test releases it, so which attempt
wins never depends on the machine's speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.trace import SpanKind

import buttress
from buttress import Throttled
from buttress.events import HedgeSent, HedgeWon, ThrottleRejected
from buttress.httpx import AsyncResilientTransport, ResilientTransport
from buttress.testing import FakeClock, capture_events

from ._transport_support import Tracing
from ._upstream import Upstream


def sync_client(tracing: Tracing, **options: object) -> httpx.Client:
    transport = ResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        internal_hosts=["127.0.0.1"],
        **options,  # type: ignore[arg-type]
    )
    return httpx.Client(transport=transport, timeout=10.0)


def async_client(tracing: Tracing, **options: object) -> httpx.AsyncClient:
    transport = AsyncResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        internal_hosts=["127.0.0.1"],
        **options,  # type: ignore[arg-type]
    )
    return httpx.AsyncClient(transport=transport, timeout=10.0)


def host_name(upstream: Upstream) -> str:
    return f"httpx:127.0.0.1:{upstream.port}"


def test_a_held_get_is_hedged_and_the_hedge_answers(tracing: Tracing, upstream: Upstream) -> None:
    with sync_client(tracing, hedge=buttress.hedge(delay=0.01)) as http, capture_events() as events:
        response = http.get(f"{upstream.url}/hold/a")
        assert response.status_code == 200
        assert "x-held" not in response.headers  # the hedge's answer, not the held one
        upstream.release("a")
    assert upstream.hits("/hold/a") == 2
    name = host_name(upstream)
    assert HedgeSent(name, 2, 0.01) in events
    assert HedgeWon(name, 2) in events
    # Each attempt is a client span of its own, the hedge marked as a resend; the
    # abandoned one ends when its answer arrives, on its own thread.
    assert _eventually(lambda: len(tracing.spans(SpanKind.CLIENT)) == 2)
    spans = tracing.spans(SpanKind.CLIENT)
    resends = sorted(int((s.attributes or {}).get("http.request.resend_count", 0)) for s in spans)  # type: ignore[arg-type]
    assert resends == [0, 1]
    traceparents = {seen.headers.get("traceparent") for seen in upstream.seen}
    assert len(traceparents) == 2  # each attempt carried its own span's context


def test_a_quick_503_is_no_answer_while_the_held_attempt_may_give_one(
    tracing: Tracing, upstream: Upstream
) -> None:
    # The hedge gets a 503 at once; the held first attempt, released then, answers 200.
    timer = threading.Timer(1.0, upstream.release, ("d",))
    timer.start()
    options = {"hedge": buttress.hedge(delay=0.01), "retry": None}
    with sync_client(tracing, **options) as http:
        response = http.get(f"{upstream.url}/hold/d?then=503")
    timer.join()
    assert response.status_code == 200
    assert response.headers["x-held"] == "1"
    assert upstream.hits("/hold/d") == 2


def test_a_post_is_never_hedged(tracing: Tracing, upstream: Upstream) -> None:
    timer = threading.Timer(0.2, upstream.release, ("b",))
    timer.start()
    with sync_client(tracing, hedge=buttress.hedge(delay=0.01)) as http, capture_events() as events:
        response = http.post(f"{upstream.url}/hold/b", content=b"once")
    timer.join()
    assert response.status_code == 200
    assert upstream.hits("/hold/b") == 1
    assert not [e for e in events if isinstance(e, HedgeSent)]


def test_hosts_hedge_apart_through_a_factory(tracing: Tracing, upstream: Upstream) -> None:
    made: list[str] = []

    def per_host(name: str) -> buttress.strategies.Hedge:
        made.append(name)
        return buttress.hedge(delay=60, name=name)

    with Upstream() as other, sync_client(tracing, hedge=per_host) as http:
        http.get(f"{upstream.url}/ok")
        http.get(f"{other.url}/ok")
        http.get(f"{upstream.url}/ok")
    assert made == [host_name(upstream), host_name(other)]


async def test_async_the_held_attempt_is_cancelled(tracing: Tracing, upstream: Upstream) -> None:
    async with async_client(tracing, hedge=buttress.hedge(delay=0.01)) as http:
        with capture_events() as events:
            response = await http.get(f"{upstream.url}/hold/c")
    upstream.release("c")
    assert response.status_code == 200
    assert "x-held" not in response.headers
    assert upstream.hits("/hold/c") == 2
    assert HedgeWon(host_name(upstream), 2) in events
    # The cancelled attempt ended its span too: none is left open.
    assert len(tracing.spans(SpanKind.CLIENT)) == 2


def test_a_refusing_host_is_throttled_and_a_healthy_one_is_not(
    tracing: Tracing, upstream: Upstream
) -> None:
    clock = FakeClock()
    policy = buttress.throttle(clock=clock, random=lambda: 0.5)
    throttled = 0
    with (
        Upstream() as healthy,
        sync_client(tracing, retry=None, throttle=policy, breaker=None) as http,
        capture_events() as events,
    ):
        for _ in range(30):
            try:
                assert http.get(f"{upstream.url}/status/503").status_code == 503
            except Throttled:
                throttled += 1
            assert http.get(f"{healthy.url}/ok").status_code == 200
    assert throttled > 0
    assert upstream.hits("/status/503") == 30 - throttled
    assert healthy.hits("/ok") == 30
    names = {e.name for e in events if isinstance(e, ThrottleRejected)}
    assert names == {host_name(upstream)}


async def test_async_429_counts_as_a_refusal(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    policy = buttress.throttle(clock=clock, random=lambda: 0.5)
    async with async_client(tracing, retry=None, throttle=policy) as http:
        with pytest.raises(Throttled):  # noqa: PT012 - the loop is what gets throttled
            for _ in range(30):
                await http.get(f"{upstream.url}/status/429")
    assert upstream.hits("/status/429") < 30


def _eventually(condition: Callable[[], bool]) -> bool:
    """A bounded wait on ``condition`` (10 s), checked every 10 ms."""
    pause = threading.Event()
    for _ in range(1000):
        if condition():
            return True
        pause.wait(0.01)
    return condition()
