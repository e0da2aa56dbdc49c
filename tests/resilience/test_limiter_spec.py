"""The token bucket's arithmetic as a specification: refill, reservations, refunds."""

from __future__ import annotations

import pytest

from buttress.resilience._limiter_backend import LocalLimiter, TokenBucket
from buttress.testing import FakeClock


def test_a_full_bucket_gives_burst_tokens_then_names_the_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.tokens == 0.0
    assert bucket.take(0.0, 0.0) == -0.5  # one token comes in 1 / rate seconds
    assert bucket.tokens == 0.0  # a refusal takes nothing


def test_a_reservation_within_max_wait_queues_behind_the_others() -> None:
    bucket = TokenBucket(rate=2.0, burst=1.0, now=0.0)
    assert bucket.take(0.0, 1.0) == 0.0
    assert bucket.take(0.0, 1.0) == 0.5  # exactly the wait: reserved
    assert bucket.tokens == -1.0
    assert bucket.take(0.0, 1.0) == 1.0  # behind the first reservation
    assert bucket.take(0.0, 1.0) == -1.5  # 1.5 s is over max_wait
    assert bucket.tokens == -2.0


def test_refill_is_rate_times_elapsed_capped_at_burst() -> None:
    bucket = TokenBucket(rate=4.0, burst=2.0, now=10.0)
    bucket.take(10.0, 0.0)
    bucket.take(10.0, 0.0)
    assert bucket.take(10.1, 0.0) == pytest.approx(-0.15)  # 0.4 tokens: 0.6 missing
    assert bucket.tokens == pytest.approx(0.4)
    assert bucket.stamp == 10.1
    assert bucket.take(10.25, 0.0) == 0.0  # 1.0 token
    bucket.take(100.0, 0.0)
    assert bucket.tokens == 1.0  # capped at burst, then one taken


def test_a_clock_that_goes_back_adds_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=5.0)
    bucket.take(5.0, 0.0)
    bucket.take(3.0, 0.0)
    assert (bucket.tokens, bucket.stamp) == (0.0, 5.0)
    bucket.give_back(4.0)
    assert bucket.stamp == 5.0


def test_give_back_returns_one_token_without_passing_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    bucket.take(0.0, 0.0)
    bucket.take(0.0, 0.0)
    assert bucket.take(0.0, 5.0) == 1.0
    bucket.give_back(0.0)
    assert bucket.tokens == 0.0
    bucket.give_back(0.5)
    assert bucket.tokens == 1.5  # refilled 0.5, then the refund
    bucket.give_back(0.5)
    assert bucket.tokens == 2.0  # never above burst


def test_local_limiter_reads_its_clock_for_every_take() -> None:
    clock = FakeClock(0)
    limiter = LocalLimiter(1.0, 1.0, clock)
    assert limiter.local is True
    assert limiter.bucket.stamp == 0
    assert limiter.take(0.0) == 0.0
    assert limiter.take(0.0) == -1.0
    clock.advance(0.25)
    assert limiter.take(1.0) == 0.75
    limiter.give_back()
    clock.advance(1.0)
    assert limiter.take(0.0) == 0.0
    assert limiter.bucket.tokens == 0.0


async def test_local_limiter_async_calls_are_the_sync_ones() -> None:
    clock = FakeClock(0)
    limiter = LocalLimiter(2.0, 1.0, clock)
    assert await limiter.take_async(0.0) == 0.0
    assert await limiter.take_async(1.0) == 0.5
    await limiter.give_back_async()
    assert limiter.bucket.tokens == 0.0
