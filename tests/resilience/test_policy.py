from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import buttress
from buttress import ConfigurationError, Policy, Rejected, TimedOut
from buttress.deadline import current_deadline
from buttress.events import FallbackUsed, RetryFinished, TimeoutExpired
from buttress.strategies import Strategy
from buttress.testing import FakeClock, capture_events

from ._fakes import Flaky

R = TypeVar("R")


class Tag(Strategy):
    """A strategy with a required name, as breakers and bulkheads have: logs enter/exit."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        self.log.append(f"{self.name}>")
        try:
            return fn(*args, **kwargs)
        finally:
            self.log.append(f"<{self.name}")

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        self.log.append(f"{self.name}>")
        try:
            return await fn(*args, **kwargs)
        finally:
            self.log.append(f"<{self.name}")

    def __repr__(self) -> str:
        return f"Tag({self.name!r})"


def test_the_first_strategy_is_the_outermost() -> None:
    log: list[str] = []
    policy = Policy(Tag("a", log), Tag("b", log), Tag("c", log))

    @policy
    def work(x: int, *, y: int = 0) -> int:
        log.append("work")
        return x + y

    assert work(1, y=2) == 3
    assert log == ["a>", "b>", "c>", "work", "<c", "<b", "<a"]
    log.clear()
    assert policy.call(work.__wrapped__.__wrapped__.__wrapped__, 1) == 1  # type: ignore[attr-defined]
    assert log == ["a>", "b>", "c>", "work", "<c", "<b", "<a"]


async def test_async_decorator_and_caller() -> None:
    log: list[str] = []
    policy = Policy(Tag("a", log), Tag("b", log))

    @policy
    async def work(x: int) -> int:
        log.append("work")
        return x

    assert inspect.iscoroutinefunction(work)
    assert await work(4) == 4
    assert await policy.call(Flaky(value=9).run_async) == 9
    assert log == ["a>", "b>", "work", "<b", "<a", "a>", "b>", "<b", "<a"]


def test_decorating_keeps_the_signature() -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    wrapped = Policy(buttress.retry(on=ValueError), buttress.timeout(1))(add)
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert wrapped.__name__ == "add"


def test_members_take_the_policy_name() -> None:
    clock = FakeClock()
    policy = Policy(
        buttress.fallback("cached", on=Exception),
        buttress.retry(on=ValueError, attempts=2, clock=clock, sleep=clock.sleep),
        buttress.timeout(5, clock=clock),
        name="payments",
    )
    with capture_events() as events:
        assert policy.call(Flaky(ValueError(), ValueError())) == "cached"
    assert {e.name for e in events} == {"payments"}
    assert [type(e) for e in events][-2:] == [RetryFinished, FallbackUsed]
    # Explicit names are kept; strategies with required names are left alone.
    log: list[str] = []
    named = Policy(buttress.retry(on=ValueError, name="own"), Tag("breaker", log), name="p")
    assert [getattr(s, "name", None) for s in named.strategies] == ["own", "breaker"]


def test_named_copies_share_the_retry_budget() -> None:
    clock = FakeClock()
    shared = buttress.retry(
        on=ValueError, budget=0.0, budget_floor=0.2, clock=clock, sleep=clock.sleep
    )
    first, second = Policy(shared, name="one"), Policy(shared, name="two")
    for policy in (first, second, first):
        with pytest.raises(ValueError):
            policy.call(Flaky(*[ValueError()] * 5))
    assert len(clock.sleeps) == 2  # two retries per 10 s, shared by every copy


def test_retry_outside_a_timeout_times_each_attempt() -> None:
    clock = FakeClock(0.0)
    deadlines: list[float | None] = []

    def work() -> None:
        deadlines.append(current_deadline())
        raise ValueError

    policy = Policy(
        buttress.retry(on=ValueError, attempts=3, clock=clock, sleep=clock.sleep, jitter="none"),
        buttress.timeout(2.0, clock=clock),
    )
    with pytest.raises(ValueError):
        policy.call(work)
    assert deadlines == [2.0, 2.1, 2.3]  # each attempt its own 2 s, after waits of 0.1 and 0.2


def test_a_timeout_outside_a_retry_bounds_them_all() -> None:
    clock = FakeClock(0.0)
    policy = Policy(
        buttress.timeout(0.25, clock=clock),
        buttress.retry(on=ValueError, clock=clock, sleep=clock.sleep, jitter="none", name="r"),
    )
    with capture_events() as events, pytest.raises(ValueError):
        policy.call(Flaky(*[ValueError()] * 10))
    assert clock.sleeps == [0.1]
    assert events[-1] == RetryFinished("r", 2, "deadline", "ValueError")


async def test_async_timeout_rejection_falls_back() -> None:
    import asyncio

    policy = Policy(buttress.fallback("late", on=Rejected), buttress.timeout(1e-06), name="slow")

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    with capture_events() as events:
        assert await policy.call(hang) == "late"
    assert events == [TimeoutExpired("slow", 1e-06), FallbackUsed("slow", TimedOut.__name__)]


def test_policies_nest_and_unnamed_ones_take_the_outer_name() -> None:
    log: list[str] = []
    inner = Policy(buttress.retry(on=ValueError), Tag("t", log))
    outer = Policy(Tag("o", log), inner, name="outer")
    assert outer.call(lambda: 5) == 5
    assert log == ["o>", "t>", "<t", "<o"]
    nested = outer.strategies[1]
    assert isinstance(nested, Policy)
    assert nested.name == "outer"
    assert getattr(nested.strategies[0], "name", None) == "outer"
    assert inner.name is None


def test_repr_shows_the_chain() -> None:
    policy = Policy(buttress.timeout(1, name="t"), Tag("b", []), name="p")
    assert repr(policy) == "Policy(timeout(1.0, name='t'), Tag('b'), name='p')"
    assert repr(Policy(Tag("b", []))) == "Policy(Tag('b'))"


def test_bad_members_are_named() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        Policy()
    with pytest.raises(ConfigurationError, match="print"):
        Policy(print)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="''"):
        Policy(buttress.timeout(1), name="")
    with pytest.raises(TypeError, match="42"):
        Policy(buttress.timeout(1))(42)  # type: ignore[arg-type]
