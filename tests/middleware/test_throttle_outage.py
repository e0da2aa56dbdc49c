"""Adaptive throttling through an outage: a real upstream refuses 90 % of calls for 10 s.

Two transports call the same upstream (on 127.0.0.1) side by side: one with the default
retry and its budget alone, one with a throttle as well. Time is a fake clock that moves
20 ms per client call (50 calls a second), so the 10 s outage is 500 calls and the test
takes no real ten seconds; the upstream's answers are real. During the outage the
throttled client must send at most half the upstream calls per client call that the
retry budget alone allows, and once the upstream recovers it must be back to exactly one
upstream call per client call within a few seconds.
"""

from __future__ import annotations

import contextlib
import random

import httpx
import pytest
from prometheus_client import CollectorRegistry

import buttress
from buttress import Throttled
from buttress.httpx import RETRY_ON, ResilientTransport
from buttress.testing import FakeClock

from ._upstream import Upstream

STEP = 0.02  # fake seconds per client call
RATE = round(1 / STEP)  # client calls per fake second
BUDGET, FLOOR = 0.2, 1.0  # the retry's defaults


def transport(clock: FakeClock, *, throttled: bool) -> ResilientTransport:
    policy = buttress.retry(
        on=RETRY_ON,
        attempts=3,
        budget=BUDGET,
        budget_floor=FLOOR,
        clock=clock,
        sleep=lambda s: None,
    )
    throttle = None
    if throttled:
        throttle = buttress.throttle(clock=clock, random=random.Random(21).random)
    return ResilientTransport(
        retry=policy,
        throttle=throttle,
        breaker=None,  # the retry budget alone, against the budget and the throttle
        clock=clock,
        metrics_registry=CollectorRegistry(),
    )


class Caller:
    """One client and the upstream calls it caused, second by fake second."""

    def __init__(self, http: httpx.Client, upstream: Upstream, key: str) -> None:
        self.http = http
        self.upstream = upstream
        self.path = f"/busy/{key}"

    def call(self) -> None:
        with contextlib.suppress(Throttled):
            self.http.get(f"{self.upstream.url}{self.path}")


def second(clock: FakeClock, *callers: Caller) -> list[float]:
    """One fake second of calls by each caller; each one's upstream calls per client call."""
    before = [c.upstream.hits(c.path) for c in callers]
    for _ in range(RATE):
        for caller in callers:
            caller.call()
        clock.advance(STEP)
    return [(c.upstream.hits(c.path) - b) / RATE for c, b in zip(callers, before, strict=True)]


@pytest.mark.slow
def test_throttling_sheds_an_outage_and_recovers_within_seconds() -> None:
    clock = FakeClock()
    with (
        Upstream() as upstream,
        httpx.Client(transport=transport(clock, throttled=False)) as plain_http,
        httpx.Client(transport=transport(clock, throttled=True)) as throttled_http,
    ):
        plain = Caller(plain_http, upstream, "plain")
        throttled = Caller(throttled_http, upstream, "throttled")
        for _ in range(2):  # healthy: one upstream call per client call, both
            assert second(clock, plain, throttled) == [1.0, 1.0]
        upstream.outage = True
        during = [second(clock, plain, throttled) for _ in range(10)]
        upstream.outage = False
        after = [second(clock, plain, throttled)[1] for _ in range(10)]
    during_plain = [d[0] for d in during]
    during_throttled = [d[1] for d in during]
    # What the budget alone allows per client call: the first attempt, the share, the floor.
    allowed = 1 + BUDGET + FLOOR / RATE
    plain_ratio = sum(during_plain) / len(during_plain)
    throttled_ratio = sum(during_throttled) / len(during_throttled)
    assert 1.0 < plain_ratio <= allowed + 0.01  # the budget did its part, no more
    assert throttled_ratio <= allowed / 2, (throttled_ratio, plain_ratio)
    # Back to one upstream call per client call, and staying there, within 3 s.
    recovered = next(i for i in range(len(after)) if all(r == 1.0 for r in after[i:]))
    assert recovered <= 3, after
