"""A flapping upstream under a policy: the breaker opens and recovers, retries stay within
their budget, the bulkhead holds its limit, and no call outlives its deadline.

Real HTTP on 127.0.0.1 (httpx against a tiny asyncio server), real time, bounded.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

import httpx
import pytest

import buttress
from buttress import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    Policy,
    Rejected,
    TimedOut,
)
from buttress.events import BreakerTransition, Event, Registry

from ._upstream import Upstream
from .conftest import Figures

pytestmark = pytest.mark.reliability

DEADLINE = 1.0  # each client call, retries included
ATTEMPT_TIMEOUT = 0.25  # each attempt
SLOW_LATENCY = 0.5  # injected upstream latency: longer than an attempt may take
ATTEMPTS = 4
BUDGET, BUDGET_FLOOR, BUDGET_WINDOW = 0.2, 1.0, 10.0
MAX_CONCURRENT = 6
CLIENTS = 16
# Asyncio cancels at the deadline; the slack only absorbs scheduling on a busy machine.
HANG_SLACK = 0.5


class UpstreamError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"upstream answered {status}")


class Transitions:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, event: Event, /) -> None:
        if isinstance(event, BreakerTransition):
            self.seen.append((event.old, event.new))


async def test_flapping_upstream_under_a_policy(scale: float, figures: Figures) -> None:
    duration = 4.0 * scale
    transitions = Transitions()
    registry = Registry()
    registry.add(transitions)
    in_flight = 0
    max_in_flight = 0

    async with Upstream(slow_rate=0.05, slow_latency=SLOW_LATENCY, seed=7) as upstream:
        limits = httpx.Limits(max_connections=MAX_CONCURRENT * 2)
        async with httpx.AsyncClient(base_url=upstream.url, limits=limits, timeout=5) as http:

            async def fetch() -> str:
                nonlocal in_flight, max_in_flight
                in_flight += 1
                max_in_flight = max(max_in_flight, in_flight)
                try:
                    response = await http.get("/")
                finally:
                    in_flight -= 1
                if response.status_code >= 500:
                    raise UpstreamError(response.status_code)
                return response.text

            breaker = CircuitBreaker(
                "upstream",
                consecutive_failures=None,
                failure_rate=0.5,
                window=20,
                minimum_calls=10,
                reset_timeout=0.3,
                events=registry,
            )
            policy = Policy(
                buttress.timeout(DEADLINE, events=registry),
                buttress.retry(
                    on=(UpstreamError, httpx.TransportError, TimedOut),
                    attempts=ATTEMPTS,
                    wait_initial=0.02,
                    wait_max=0.2,
                    budget=BUDGET,
                    budget_floor=BUDGET_FLOOR,
                    events=registry,
                ),
                # Outside the breaker: a full bulkhead says nothing about the upstream's health.
                Bulkhead(
                    "upstream",
                    max_concurrent=MAX_CONCURRENT,
                    max_waiting=CLIENTS,
                    wait_timeout=DEADLINE,
                    events=registry,
                ),
                breaker,
                buttress.timeout(ATTEMPT_TIMEOUT, name="attempt", events=registry),
                name="upstream",
            )
            guarded = policy(fetch)
            outcomes: Counter[str] = Counter()
            unexpected: list[BaseException] = []
            longest = 0.0
            stop = asyncio.Event()

            async def client() -> None:
                nonlocal longest
                while not stop.is_set():
                    start = time.monotonic()
                    try:
                        await guarded()
                        outcomes["ok"] += 1
                    except CircuitOpen:
                        outcomes["breaker open"] += 1
                        await asyncio.sleep(0.05)  # a real caller backs off too
                    except Rejected as exc:
                        outcomes[type(exc).__name__] += 1
                    except UpstreamError:
                        outcomes["upstream error"] += 1
                    except Exception as exc:
                        unexpected.append(exc)
                    longest = max(longest, time.monotonic() - start)

            started = time.monotonic()
            flapper = asyncio.create_task(
                upstream.flap(stop, seed=11, up=(0.4, 0.9), down=(0.3, 0.7))
            )
            clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
            await asyncio.sleep(duration)
            stop.set()
            # Every client stops by itself within one deadline; this bound only guards the suite.
            await asyncio.wait_for(asyncio.gather(*clients), DEADLINE + 5)
            outages = await flapper
            elapsed = time.monotonic() - started
            upstream.outage.disable()
            load_requests = upstream.requests

            # Recovery: with the upstream healthy again, a trickle of calls closes the breaker.
            recovery_start = time.monotonic()
            while breaker.state != "closed" and time.monotonic() - recovery_start < 5:
                try:
                    await guarded()
                except (Rejected, UpstreamError):
                    await asyncio.sleep(0.05)
            recovery = time.monotonic() - recovery_start

    calls = sum(outcomes.values()) + len(unexpected)
    amplification = load_requests / calls
    windows = math.ceil(elapsed / BUDGET_WINDOW) + 1
    allowed_requests = calls * (1 + BUDGET) + BUDGET_FLOOR * BUDGET_WINDOW * windows
    figures(
        "flapping upstream under timeout+retry+breaker+bulkhead",
        {
            "seconds": elapsed,
            "client calls": calls,
            "outcomes": dict(outcomes),
            "unexpected errors": len(unexpected),
            "upstream outages": outages,
            "upstream requests": load_requests,
            "amplification (upstream requests per call)": amplification,
            "upstream requests per call the breaker let through": load_requests
            / max(1, calls - outcomes["breaker open"]),
            "amplification allowed by the budget": allowed_requests / calls,
            "amplification without a budget, at most": ATTEMPTS,
            "breaker transitions": len(transitions.seen),
            "breaker opened": sum(1 for _, new in transitions.seen if new == "open"),
            "max in flight (limit)": f"{max_in_flight} ({MAX_CONCURRENT})",
            "longest call s (deadline)": f"{longest:.3f} ({DEADLINE})",
            "breaker closed again after s": recovery,
        },
    )
    assert unexpected == []
    assert outages >= 2
    assert outcomes["ok"] > 0
    assert ("closed", "open") in transitions.seen
    assert ("open", "half_open") in transitions.seen
    assert ("half_open", "closed") in transitions.seen
    assert breaker.state == "closed"
    assert load_requests <= allowed_requests
    assert max_in_flight <= MAX_CONCURRENT
    assert longest <= DEADLINE + HANG_SLACK
