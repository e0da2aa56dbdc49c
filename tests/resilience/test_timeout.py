from __future__ import annotations

import asyncio
import contextvars
from datetime import timedelta

import pytest

import buttress
from buttress import ButtressWarning, ConfigurationError, Rejected, TimedOut
from buttress.deadline import current_deadline, deadline_scope, remaining
from buttress.events import RetryFinished, TimeoutExpired
from buttress.testing import FakeClock, capture_events

from ._fakes import Flaky


def test_deadline_scope_binds_and_resets() -> None:
    clock = FakeClock(100.0)
    assert current_deadline() is None
    assert remaining(clock) is None
    with deadline_scope(5.0, clock=clock) as deadline:
        assert deadline == current_deadline() == 105.0
        clock.advance(2.0)
        assert remaining(clock) == 3.0
    assert current_deadline() is None


def test_nested_scopes_keep_the_earliest_deadline() -> None:
    clock = FakeClock(0.0)
    with deadline_scope(5.0, clock=clock):
        with deadline_scope(10.0, clock=clock) as inner:
            assert inner == 5.0
        with deadline_scope(timedelta(seconds=1), clock=clock) as inner:
            assert inner == 1.0
        with deadline_scope(None, clock=clock) as inner:
            assert inner == 5.0
        assert current_deadline() == 5.0


def test_scopes_reset_on_errors_and_stay_in_their_context() -> None:
    clock = FakeClock(0.0)
    with pytest.raises(KeyError), deadline_scope(1.0, clock=clock):
        raise KeyError
    assert current_deadline() is None
    with deadline_scope(1.0, clock=clock):
        assert contextvars.Context().run(current_deadline) is None


def test_deadline_scope_rejects_bad_values() -> None:
    with pytest.raises(ConfigurationError, match="-1"):
        deadline_scope(-1)


def test_sync_timeout_binds_a_deadline_for_the_call() -> None:
    clock = FakeClock(10.0)
    seen: list[float | None] = []

    @buttress.timeout(2.0, clock=clock)
    def work() -> str:
        seen.append(remaining(clock))
        return "done"

    assert work() == "done"
    assert seen == [2.0]
    assert current_deadline() is None


def test_sync_timeout_never_extends_an_enclosing_deadline() -> None:
    clock = FakeClock(0.0)
    with deadline_scope(1.0, clock=clock):
        assert buttress.timeout(30, clock=clock).call(current_deadline) == 1.0


def test_a_passed_deadline_refuses_the_call() -> None:
    clock = FakeClock(0.0)
    flaky = Flaky()
    with deadline_scope(1.0, clock=clock):
        clock.advance(1.0)
        with capture_events() as events, pytest.raises(TimedOut) as info:
            buttress.timeout(5.0, clock=clock, name="t").call(flaky)
    assert flaky.calls == 0
    assert isinstance(info.value, Rejected)
    assert isinstance(info.value, TimeoutError)
    assert (info.value.name, info.value.timeout) == ("t", 5.0)
    assert events == [TimeoutExpired("t", 5.0)]


def test_retry_inside_a_sync_timeout_stops_at_its_deadline() -> None:
    clock = FakeClock(0.0)
    strategy = buttress.retry(
        on=ValueError, clock=clock, sleep=clock.sleep, jitter="none", wait_initial=1.0, name="r"
    )
    flaky = Flaky(*[ValueError()] * 10)
    with capture_events() as events, pytest.raises(ValueError):
        buttress.timeout(2.5, clock=clock).call(strategy.call, flaky)
    assert clock.sleeps == [1.0]  # a second wait of 2 s would end at 3 s > 2.5 s
    assert events[-1] == RetryFinished("r", 2, "deadline", "ValueError")


async def test_async_timeout_cancels_the_work() -> None:
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with capture_events() as events, pytest.raises(TimedOut) as info:
        await buttress.timeout(1e-06, name="slow").call(hang)
    assert cancelled.is_set()
    assert info.value.name == "slow"
    assert events == [TimeoutExpired("slow", 1e-06)]
    assert current_deadline() is None


async def test_async_timeout_passes_results_and_the_calls_own_errors() -> None:
    strategy = buttress.timeout(5.0)

    async def fine() -> float | None:
        return remaining()

    left = await strategy.call(fine)
    assert left is not None
    assert 0 < left <= 5.0
    own = TimeoutError("the call's own")

    async def fails() -> None:
        raise own

    with pytest.raises(TimeoutError) as info:
        await strategy.call(fails)
    assert info.value is own


async def test_async_timeout_follows_an_enclosing_deadline() -> None:
    clock = FakeClock(0.0)
    with deadline_scope(1.0, clock=clock):
        clock.advance(1.0)
        with pytest.raises(TimedOut):
            await buttress.timeout(5.0, clock=clock).call(asyncio.sleep, 0)
    with deadline_scope(1.0, clock=clock):
        clock.advance(1.0 - 1e-06)  # the enclosing deadline leaves 1 us: it cuts the 60 s short
        with pytest.raises(TimedOut) as info:
            await buttress.timeout(60.0, clock=clock).call(asyncio.Event().wait)
    assert info.value.timeout == pytest.approx(1e-06)


def test_values_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="'soon'"):
        buttress.timeout("soon")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="-2"):
        buttress.timeout(-2)
    with pytest.warns(ButtressWarning) as record:
        buttress.timeout(0)
    assert record[0].filename == __file__


def test_repr_and_name() -> None:
    strategy = buttress.timeout(timedelta(milliseconds=1500), name="db")
    assert repr(strategy) == "timeout(1.5, name='db')"
    assert (strategy.name, strategy.seconds) == ("db", 1.5)
