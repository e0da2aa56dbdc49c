"""Typed call sites of buttress.testing: mypy --strict checks what users' tests get.

They also run, so the examples stay true.
"""

from __future__ import annotations

from typing import assert_type

import buttress
from buttress.events import BreakerTransition, RetryScheduled
from buttress.testing import CapturedEvents, FakeClock, FaultScript, capture_events


@FaultScript([ConnectionError, "cached"])
def fetch(url: str) -> str:
    return url


@FaultScript([ConnectionError])
async def fetch_async(url: str) -> str:
    return url


def test_captured_events_are_typed_by_kind() -> None:
    clock = FakeClock()
    policy = buttress.retry(on=ConnectionError, clock=clock, sleep=clock.sleep)
    with capture_events() as events:
        assert policy.call(fetch, "a") == "cached"
        assert_type(policy.call(fetch, "a"), str)
    assert_type(events, CapturedEvents)
    scheduled = events.of_type(RetryScheduled)
    assert_type(scheduled, list[RetryScheduled])
    assert [e.attempt for e in scheduled] == [1]
    assert_type(events.count(BreakerTransition, new="open"), int)


async def test_fault_scripts_keep_signatures() -> None:
    policy = buttress.retry(on=ConnectionError, sleep=lambda seconds: None)
    assert_type(await policy.call(fetch_async, "b"), str)
    assert await fetch_async("c") == "c"
