"""Typed call sites for hedge, throttle, attempt loops and wait callables (mypy --strict).

They also run, so the examples stay true.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

import buttress
from buttress import Policy
from buttress.strategies import Attempt, Hedge, Throttle


@buttress.hedge(delay=timedelta(milliseconds=50), max_hedged=2)
def read(key: str, *, fresh: bool = False) -> bytes:
    return key.encode()


@buttress.throttle(on=ConnectionError, on_result=lambda r: r == 429)
async def status(url: str) -> int:
    return len(url)


@Policy(buttress.retry(on=ConnectionError), buttress.hedge(percentile=95), name="reads")
def composed(n: int) -> list[int]:
    return list(range(n))


def wait_for(outcome: object, attempt: int) -> float | timedelta | None:
    return 0.0 if isinstance(outcome, ConnectionError) else None


def test_signatures_are_kept() -> None:
    assert_type(read("k", fresh=True), bytes)
    assert_type(composed(2), list[int])
    assert read("k") == b"k"
    assert composed(2) == [0, 1]
    assert_type(buttress.hedge(), Hedge)
    assert_type(buttress.throttle(), Throttle)


async def test_async_signatures_are_kept() -> None:
    assert_type(await status("abc"), int)


def test_attempt_loops_and_wait_callables_are_typed() -> None:
    policy = buttress.retry(on=ConnectionError, wait=wait_for)
    for attempt in buttress.retrying(policy):
        assert_type(attempt, Attempt)
        with attempt:
            assert_type(attempt.number, int)


async def test_async_attempt_loops_are_typed() -> None:
    async for attempt in buttress.retrying(buttress.retry(on=ConnectionError)):
        with attempt:
            assert_type(attempt, Attempt)
