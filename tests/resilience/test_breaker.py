"""CircuitBreaker as users see it: decorator, caller, context manager, events, config."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from buttress import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    ConfigurationError,
    RateLimited,
    RateLimiter,
)
from buttress._events import (
    BreakerCallRecorded,
    BreakerRejected,
    BreakerTransition,
    Registry,
)
from buttress.strategies import Strategy
from buttress.testing import FakeClock

from ._clock import state


class Boom(Exception):
    pass


class Harmless(Exception):
    pass


def make(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    options: dict[str, object] = {"consecutive_failures": 2, "reset_timeout": 10.0}
    options.update(kwargs)
    return CircuitBreaker("dep", clock=clock, **options)  # type: ignore[arg-type]


def test_decorated_sync_function_opens_rejects_then_recovers() -> None:
    clock = FakeClock()
    breaker = make(clock)
    calls: list[int] = []

    @breaker
    def call(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise Boom(x)
        return x * 2

    assert call(2) == 4
    for _ in range(2):
        with pytest.raises(Boom):
            call(-1)
    with pytest.raises(CircuitOpen) as info:
        call(3)
    assert calls == [2, -1, -1]  # the rejected call never ran
    assert info.value.name == "dep"
    assert info.value.retry_after == pytest.approx(10.0)
    clock.advance(10)
    assert call(5) == 10
    assert state(breaker) == "closed"


async def test_decorated_async_function_and_call() -> None:
    clock = FakeClock()
    breaker = make(clock)

    async def call(x: int) -> int:
        if x < 0:
            raise Boom(x)
        return x

    wrapped = breaker(call)
    assert await wrapped(1) == 1
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(call, -1)
    with pytest.raises(CircuitOpen):
        await wrapped(1)
    assert state(breaker) == "open"


def test_ignored_and_other_exceptions() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_on=Boom, ignore=Harmless)
    for exc in (Harmless(), KeyError(), Harmless(), KeyError()):
        with pytest.raises(type(exc)), breaker:
            raise exc
    assert state(breaker) == "closed"  # neither kind counts as a failure
    with pytest.raises(Boom), breaker:
        raise Boom
    assert state(breaker) == "closed"  # KeyError counted as a success: no streak of 2
    with pytest.raises(Boom), breaker:
        raise Boom
    assert state(breaker) == "open"


def test_cancellation_and_ctrl_c_never_count_and_give_the_trial_back() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1)
    with pytest.raises(KeyboardInterrupt), breaker:
        raise KeyboardInterrupt
    assert state(breaker) == "closed"
    with pytest.raises(Boom), breaker:
        raise Boom
    clock.advance(10)
    with pytest.raises(asyncio.CancelledError), breaker:
        raise asyncio.CancelledError
    assert state(breaker) == "half_open"
    with breaker:  # the cancelled trial gave its permit back
        pass
    assert state(breaker) == "closed"


def test_context_manager_state_is_per_use_not_per_instance() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, half_open_permits=2)
    with pytest.raises(Boom), breaker:
        raise Boom
    clock.advance(10)
    # Two overlapping uses in one thread (nested), each with its own trial ticket.
    with breaker:
        with breaker:
            pass
        assert state(breaker) == "half_open"
    assert state(breaker) == "closed"


async def test_async_context_manager_in_concurrent_tasks() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, half_open_permits=3)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    clock.advance(10)
    gate = asyncio.Event()

    async def trial() -> None:
        async with breaker:
            await gate.wait()

    tasks = [asyncio.create_task(trial()) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        async with breaker:
            pass
    gate.set()
    await asyncio.gather(*tasks)
    assert state(breaker) == "closed"


def test_exit_without_enter_is_an_error() -> None:
    breaker = make(FakeClock())
    with pytest.raises(RuntimeError, match="without entering"):
        breaker.__exit__(None, None, None)


def test_events_and_on_transition() -> None:
    clock = FakeClock()
    registry = Registry()
    seen: list[BreakerTransition] = []
    breaker = make(clock, consecutive_failures=1, events=registry, on_transition=seen.append)
    with registry.capture() as events:
        with breaker:
            pass
        with pytest.raises(Boom), breaker:
            raise Boom
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)
    assert events == [
        BreakerCallRecorded("dep", "success", False),
        # The transition is announced as the failure is recorded, just before its event.
        BreakerTransition("dep", "closed", "open", "consecutive_failures"),
        BreakerCallRecorded("dep", "failure", False),
        BreakerRejected("dep", "open"),
    ]
    assert seen == [BreakerTransition("dep", "closed", "open", "consecutive_failures")]


def test_success_path_reuses_one_event_instance() -> None:
    registry = Registry()
    breaker = make(FakeClock(), events=registry)
    with registry.capture() as events:
        breaker.call(lambda: 1)
        breaker.call(lambda: 2)
    assert events[0] is events[1]


def test_slow_calls_are_flagged() -> None:
    clock = FakeClock()
    registry = Registry()
    breaker = make(clock, slow_call_duration=1.0, events=registry)

    def slow() -> None:
        clock.advance(2)

    with registry.capture() as events:
        breaker.call(slow)
    assert events == [BreakerCallRecorded("dep", "success", True)]


def test_a_failing_on_transition_listener_does_not_break_the_call() -> None:
    def bad(event: BreakerTransition) -> None:
        raise RuntimeError("listener bug")

    breaker = make(FakeClock(), consecutive_failures=1, on_transition=bad)
    with pytest.raises(Boom), breaker:
        raise Boom
    assert state(breaker) == "open"


def test_manual_control_and_readable_state() -> None:
    clock = FakeClock()
    breaker = make(clock)
    breaker.force_open()
    assert state(breaker) == "forced_open"
    assert breaker.time_until_half_open is None
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: 1)
    assert info.value.retry_after is None
    breaker.force_closed()
    for _ in range(5):
        with pytest.raises(Boom), breaker:
            raise Boom
    assert breaker.call(lambda: 1) == 1
    breaker.reset()
    assert state(breaker) == "closed"
    assert str(breaker.time_until_half_open) == "0.0"  # a str: mypy narrowed it to None
    assert "closed" in repr(breaker)


def test_a_slow_call_does_not_block_other_callers() -> None:
    breaker = CircuitBreaker("dep")
    inside, release = threading.Event(), threading.Event()

    def slow() -> None:
        inside.set()
        assert release.wait(5)

    worker = threading.Thread(target=breaker.call, args=(slow,))
    worker.start()
    assert inside.wait(5)
    # The slow call is in flight: a second call must pass right through.
    assert breaker.call(lambda: "through") == "through"
    release.set()
    worker.join(5)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"slow_call_rate": 0.5}, "slow_call_duration"),
        ({"slow_call_duration": -1}, "slow_call_duration"),
        ({"window": 0}, "window"),
        ({"window_type": "sliding"}, "window_type"),
        ({"window": "1m", "window_type": "time"}, "window"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"reset_timeout": float("nan")}, "reset_timeout"),
        ({"max_reset_timeout": 1.0}, "max_reset_timeout"),
        ({"reset_backoff": 0.5}, "reset_backoff"),
        ({"half_open_permits": True}, "half_open_permits"),
        ({"failure_on": KeyboardInterrupt}, "failure_on"),
        ({"ignore": "ValueError"}, "ignore"),
        ({"on_transition": 3}, "on_transition"),
        ({"consecutive_failures": None}, "consecutive_failures"),
    ],
)
def test_bad_configuration_names_the_value(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        CircuitBreaker("dep", **kwargs)  # type: ignore[arg-type]


def test_bad_name() -> None:
    with pytest.raises(ConfigurationError, match="name"):
        CircuitBreaker("")


def test_timedelta_durations() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "dep",
        consecutive_failures=1,
        reset_timeout=timedelta(seconds=3),
        window=timedelta(minutes=1),
        window_type="time",
        clock=clock,
    )
    with pytest.raises(Boom), breaker:
        raise Boom
    assert breaker.time_until_half_open == pytest.approx(3.0)


def test_a_count_window_smaller_than_minimum_calls_is_refused_naming_both() -> None:
    with pytest.raises(ConfigurationError, match=r"minimum_calls=20 .* window=10"):
        CircuitBreaker("dep", failure_rate=0.5, window=10, minimum_calls=20)


async def test_breaker_bulkhead_and_rate_limiter_stack_as_strategies() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1)
    bulkhead = Bulkhead("dep", max_concurrent=1)
    limiter = RateLimiter("dep", rate=1, burst=3, clock=clock)
    assert all(isinstance(s, Strategy) for s in (breaker, bulkhead, limiter))

    @limiter
    @bulkhead
    @breaker
    def sync(fail: bool) -> str:
        if fail:
            raise Boom
        return "sync"

    @limiter
    @bulkhead
    @breaker
    async def asyn() -> str:
        assert bulkhead.in_use == 1
        return "async"

    assert sync(False) == "sync"
    assert await asyn() == "async"
    with pytest.raises(Boom):
        sync(True)
    with pytest.raises(RateLimited):  # the limiter (outermost) spent its burst first
        await asyn()
    clock.advance(1)
    with pytest.raises(CircuitOpen):
        sync(False)
    assert bulkhead.in_use == 0
