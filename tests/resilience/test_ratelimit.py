"""RateLimiter: token bucket arithmetic, refusal and waiting, and the rate bound under load."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from buttress import ConfigurationError, RateLimited, RateLimiter
from buttress._events import RateLimitRejected, RateLimitWaited, Registry
from buttress.resilience._ratelimit import TokenBucket
from buttress.testing import FakeClock


def test_bucket_grants_burst_then_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0, 0.0) == pytest.approx(-0.5)  # next token in 0.5 s
    assert bucket.take(0.5, 0.0) == 0.0
    assert bucket.take(100.0, 0.0) == 0.0  # refill is capped at the burst
    assert bucket.tokens == pytest.approx(2.0)


def test_bucket_reservations_queue_in_order() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, now=0.0)
    assert bucket.take(0.0, 1.0) == 0.0
    waits = [bucket.take(0.0, 1.0) for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    # A caller that will not wait sees the time past every reservation.
    assert bucket.take(0.0, 0.0) == pytest.approx(-0.4)


def test_refuses_with_retry_after_and_event() -> None:
    clock = FakeClock()
    registry = Registry()
    limiter = RateLimiter("api", rate=2, burst=1, clock=clock, events=registry)
    with registry.capture() as events:
        assert limiter.call(lambda: 1) == 1
        with pytest.raises(RateLimited) as info:
            limiter.call(lambda: 1)
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.name == "api"
    assert events == [RateLimitRejected("api", pytest.approx(0.5))]  # type: ignore[arg-type]
    clock.advance(0.5)
    with limiter:
        pass


def test_waits_when_allowed() -> None:
    registry = Registry()
    limiter = RateLimiter("api", rate=1000, burst=1, max_wait=1.0, events=registry)
    with registry.capture() as events:
        for _ in range(3):
            limiter.call(lambda: None)
    waited = [e for e in events if isinstance(e, RateLimitWaited)]
    assert waited  # at 1,000/s with a burst of 1, back-to-back calls must have waited
    assert all(0 < e.wait <= 0.003 for e in waited)


async def test_async_refuses_and_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter("api", rate=1, burst=1, clock=clock)

    async def ok() -> str:
        return "ok"

    assert await limiter.call(ok) == "ok"
    with pytest.raises(RateLimited):
        async with limiter:
            pass
    waiting = RateLimiter("api", rate=1000, burst=1, max_wait=1.0)
    results = await asyncio.gather(*(waiting.call(ok) for _ in range(5)))
    assert results == ["ok"] * 5


def test_per_period() -> None:
    clock = FakeClock()
    limiter = RateLimiter("api", rate=60, per=timedelta(minutes=1), burst=1, clock=clock)
    limiter.acquire()
    with pytest.raises(RateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(1.0)
    assert "rate=1/s" in repr(limiter)


def test_never_grants_more_than_rate_times_time_plus_burst_across_64_threads() -> None:
    rate, burst = 2_000.0, 20
    limiter = RateLimiter("api", rate=rate, burst=burst)
    granted = 0
    lock = threading.Lock()
    start_line = threading.Barrier(64)
    began = time.monotonic()

    def work() -> None:
        nonlocal granted
        start_line.wait(10)
        mine = 0
        for _ in range(100):
            try:
                limiter.acquire()
                mine += 1
            except RateLimited:
                pass
        with lock:
            granted += mine

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - began  # measured after: the bound can only be looser
    assert burst <= granted <= rate * elapsed + burst


async def test_never_grants_more_than_rate_times_time_plus_burst_across_1000_tasks() -> None:
    clock = FakeClock()
    rate, burst = 100.0, 10
    limiter = RateLimiter("api", rate=rate, burst=burst, clock=clock)
    granted = 0

    async def work() -> None:
        nonlocal granted
        for _ in range(3):
            try:
                await limiter.acquire_async()
                granted += 1
            except RateLimited:
                pass
            clock.advance(0.0001)
            await asyncio.sleep(0)

    began = clock.now
    await asyncio.gather(*(work() for _ in range(1_000)))
    assert granted <= rate * (clock.now - began) + burst
    assert granted >= burst


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "per": 0}, "per"),
        ({"rate": 1, "max_wait": -1}, "max_wait"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        RateLimiter("api", **kwargs)  # type: ignore[arg-type]


def test_waits_go_through_an_injected_sleep_sync_and_async() -> None:
    clock = FakeClock()
    limiter = RateLimiter("r", rate=2, burst=1, max_wait=1.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()  # the next token is 0.5 s away: reserved, and the fake sleep waits
    assert clock.sleeps == [0.5]

    alimiter = RateLimiter("a", rate=2, burst=1, max_wait=1.0, clock=clock, sleep=clock.async_sleep)

    async def take_two() -> None:
        await alimiter.acquire_async()
        await alimiter.acquire_async()

    asyncio.run(take_two())
    assert clock.sleeps == [0.5, 0.5]


def test_a_sleep_that_is_not_callable_is_named() -> None:
    with pytest.raises(ConfigurationError, match="42"):
        RateLimiter("r", rate=1, sleep=42)  # type: ignore[arg-type]
