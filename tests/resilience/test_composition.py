"""Every strategy composes in one Policy, sync and async, outermost first."""

from __future__ import annotations

import asyncio

import pytest

import buttress
from buttress.events import (
    BreakerRejected,
    BreakerTransition,
    Event,
    FallbackUsed,
    Registry,
    RetryFinished,
    RetryScheduled,
)
from buttress.testing import FakeClock


class Down(Exception):
    pass


def _policy(
    clock: FakeClock, registry: Registry
) -> tuple[buttress.Policy, buttress.CircuitBreaker]:
    breaker = buttress.CircuitBreaker(
        "db",
        consecutive_failures=4,
        reset_timeout=10.0,
        clock=clock,
        events=registry,
    )
    policy = buttress.Policy(
        buttress.fallback("cached", on=buttress.CircuitOpen, events=registry),
        buttress.Bulkhead("db", max_concurrent=2, events=registry),
        buttress.retry(
            on=Down, attempts=2, budget=None, clock=clock, sleep=clock.sleep, events=registry
        ),
        breaker,
        buttress.RateLimiter("db", rate=1000, burst=1000, clock=clock, events=registry),
        name="db-policy",
    )
    return policy, breaker


def _kinds(events: list[Event]) -> list[str]:
    return [
        type(e).__name__
        for e in events
        if not type(e).__name__.startswith(("Bulkhead", "BreakerCall"))
    ]


def test_sync_policy_retries_opens_the_breaker_then_falls_back() -> None:
    clock, registry = FakeClock(), Registry()
    policy, breaker = _policy(clock, registry)
    calls = 0

    @policy
    def query() -> str:
        nonlocal calls
        calls += 1
        raise Down

    with registry.capture() as events:
        for _ in range(2):  # 2 calls x 2 attempts = 4 failures: the breaker opens
            with pytest.raises(Down):
                query()
        opened = breaker.state
        assert query() == "cached"  # refused by the breaker, answered by the fallback
    assert opened == "open"
    assert calls == 4
    assert any(isinstance(e, BreakerTransition) and e.new == "open" for e in events)
    assert sum(isinstance(e, RetryScheduled) for e in events) == 2
    assert any(isinstance(e, BreakerRejected) for e in events)
    fallbacks = [e for e in events if isinstance(e, FallbackUsed)]
    assert [(e.name, e.error_type) for e in fallbacks] == [("db-policy", "CircuitOpen")]
    finished = [e for e in events if isinstance(e, RetryFinished)]
    assert {e.name for e in finished} == {"db-policy"}

    clock.advance(10.0)  # the breaker lets a trial through, which succeeds
    calls_before = calls

    @policy
    def healthy() -> str:
        return "fresh"

    assert healthy() == "fresh"
    assert (breaker.state, calls) == ("closed", calls_before)


async def test_async_policy_behaves_like_the_sync_one() -> None:
    clock, registry = FakeClock(), Registry()
    policy, breaker = _policy(clock, registry)
    calls = 0

    @policy
    async def query() -> str:
        nonlocal calls
        calls += 1
        raise Down

    with registry.capture() as events:
        for _ in range(2):
            with pytest.raises(Down):
                await query()
        assert await query() == "cached"
    assert calls == 4
    assert breaker.state == "open"
    assert "FallbackUsed" in _kinds(events)


def test_repr_shows_the_chain() -> None:
    policy, _ = _policy(FakeClock(), Registry())
    text = repr(policy)
    order = [text.index(word) for word in ("allback", "ulkhead", "etry", "ircuit", "ate")]
    assert order == sorted(order)


def test_caller_side_rejections_inside_the_breaker_do_not_open_it() -> None:
    clock, registry = FakeClock(), Registry()
    breaker = buttress.CircuitBreaker("dep", consecutive_failures=2, clock=clock, events=registry)
    limiter = buttress.RateLimiter("dep", rate=1, burst=1, clock=clock, events=registry)
    guarded = buttress.Policy(breaker, limiter)(lambda: "ok")
    assert guarded() == "ok"
    for _ in range(5):  # the bucket is empty: the caller's congestion, not the dependency's
        with pytest.raises(buttress.RateLimited):
            guarded()
    assert breaker.state == "closed"


async def test_a_timeout_inside_the_breaker_counts_as_a_failure() -> None:
    clock, registry = FakeClock(), Registry()
    breaker = buttress.CircuitBreaker("dep", consecutive_failures=2, clock=clock, events=registry)

    @buttress.Policy(breaker, buttress.timeout(1e-6, events=registry))
    async def call() -> str:
        await asyncio.sleep(10)  # cancelled at once by the 1 us timeout
        return "late"

    for _ in range(2):
        with pytest.raises(buttress.TimedOut):
            await call()
    assert breaker.state == "open"
