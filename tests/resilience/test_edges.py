"""The edges where strategies used to be wrong: hung trials, float thresholds, lost slots
and tokens, predicates that raise, contradicting options, generators, event loops.

Every test here failed before its fix. Nothing sleeps: clocks are fake, sleeps injected.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import types
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import buttress
from buttress import (
    Bulkhead,
    BulkheadFull,
    ButtressWarning,
    CircuitBreaker,
    CircuitOpen,
    ConfigurationError,
    Policy,
    RateLimited,
    RateLimiter,
)
from buttress.resilience import _bulkhead
from buttress.resilience._breaker_core import (
    FAILURE,
    REJECTED,
    SUCCESS,
    BreakerConfig,
    BreakerCore,
    OpeningRule,
    ratio,
)
from buttress.strategies import Strategy
from buttress.testing import FakeClock

from ._clock import state


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


# -- a half-open trial that never finishes ---------------------------------------------


def opened(clock: FakeClock, **options: Any) -> CircuitBreaker:
    breaker = CircuitBreaker(
        "dep", consecutive_failures=1, reset_timeout=10, clock=clock, **options
    )
    with pytest.raises(Boom):
        breaker.call(boom)
    assert state(breaker) == "open"
    return breaker


def test_a_hung_trial_is_reclaimed_after_half_open_max_wait() -> None:
    clock = FakeClock()
    breaker = opened(clock, half_open_max_wait=20)
    clock.advance(10)
    hung = contextvars.copy_context()
    hung.run(breaker.__enter__)  # a trial whose exit never comes back to us
    assert state(breaker) == "half_open"
    clock.advance(19)
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: "ok")
    assert refused.value.retry_after == pytest.approx(1.0)  # never 0 while refusing
    assert breaker.time_until_half_open == pytest.approx(1.0)
    clock.advance(1)
    assert breaker.call(lambda: "ok") == "ok"  # a new trial: the lost permit is back
    assert state(breaker) == "closed"


def test_the_late_outcome_of_a_reclaimed_trial_counts_for_nothing() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=10))
    ticket = core.admit(0)
    core.record(0, ticket, FAILURE, 0)
    hung = core.admit(10)
    assert core.admit(15) == REJECTED
    assert core.retry_after(15) == pytest.approx(5)  # half_open_max_wait = reset_timeout
    fresh = core.admit(20)
    assert fresh != REJECTED
    assert core.record(21, hung, FAILURE, 0) is False  # the old round's verdict is void
    assert state(core) == "half_open"
    core.record(21, fresh, SUCCESS, 0)
    assert state(core) == "closed"


def test_exit_in_another_context_loses_the_permit_only_until_the_round_is_reclaimed() -> None:
    # ``async with breaker:`` in an async generator finalised by another task, or a sync
    # yield-dependency: __exit__ runs in a context that never saw __enter__.
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(10)
    contextvars.copy_context().run(breaker.__enter__)
    with pytest.raises(RuntimeError, match="exited without entering"):
        breaker.__exit__(None, None, None)
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: "ok")
    assert refused.value.retry_after is not None
    assert refused.value.retry_after > 0
    clock.advance(10)
    assert breaker.call(lambda: "ok") == "ok"


def test_a_refusal_never_says_retry_after_zero() -> None:
    clock = FakeClock()
    breaker = opened(clock, half_open_permits=1)
    clock.advance(10)
    contextvars.copy_context().run(breaker.__enter__)
    clock.advance(10)  # exactly the end of the round: the next call is a new trial
    with pytest.raises(Boom):
        breaker.call(boom)  # the new trial fails: open again for 10 s
    for _ in range(3):
        with pytest.raises(CircuitOpen) as refused:
            breaker.call(boom)
        assert refused.value.retry_after is not None
        assert refused.value.retry_after > 0
        clock.advance(3)


# -- thresholds judged in integers -------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "calls", "rate"),
    [(55, 100, 0.55), (7, 25, 0.28), (7, 50, 0.14), (7, 100, 0.07), (1, 3, 0.33), (29, 100, 0.29)],
)
def test_a_failure_rate_exactly_at_the_threshold_opens(
    failures: int, calls: int, rate: float
) -> None:
    config = BreakerConfig(
        consecutive_failures=None, failure_rate=rate, window=calls, minimum_calls=calls
    )
    core = BreakerCore(config)
    for index in range(calls):
        outcome = SUCCESS if index < calls - failures else FAILURE
        core.record(0, core.admit(0), outcome, 0)
    assert state(core) == "open"


@pytest.mark.parametrize(("failures", "calls", "rate"), [(54, 100, 0.55), (6, 25, 0.28)])
def test_a_failure_rate_just_below_the_threshold_stays_closed(
    failures: int, calls: int, rate: float
) -> None:
    rule = OpeningRule.of(BreakerConfig(consecutive_failures=None, failure_rate=rate))
    assert rule.judge(calls, failures, 0) is None
    assert rule.judge(calls, failures + 1, 0) is not None


def test_a_slow_call_rate_exactly_at_the_threshold_opens() -> None:
    rule = OpeningRule.of(
        BreakerConfig(consecutive_failures=None, slow_call_rate=0.07, slow_call_duration=1.0)
    )
    assert rule.judge(100, 0, 7) == "slow_call_rate"
    assert rule.judge(100, 0, 6) is None


def test_ratio_is_the_decimal_the_user_wrote() -> None:
    assert ratio(0.55) == (11, 20)
    assert ratio(0.07) == (7, 100)
    assert ratio(1.0) == (1, 1)
    assert ratio(1 / 3) == (1, 3)


# -- slots and tokens given back on every exit path -----------------------------------------


class _InterruptedEvent(threading.Event):
    """An Event whose wait is interrupted, as by Ctrl-C; ``grant`` runs first, if given."""

    grant: Callable[[], None] | None = None

    def wait(self, timeout: float | None = None) -> bool:
        if self.grant is not None:
            self.grant()
        raise KeyboardInterrupt


def interrupting(monkeypatch: pytest.MonkeyPatch, grant: Callable[[], None] | None) -> None:
    event = type("Event", (_InterruptedEvent,), {"grant": staticmethod(grant) if grant else None})
    fake = types.SimpleNamespace(Event=event, Lock=threading.Lock)
    monkeypatch.setattr(_bulkhead, "threading", fake)


def test_a_waiting_thread_interrupted_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    bulkhead = Bulkhead("dep", max_concurrent=1, max_waiting=1, wait_timeout=30)
    bulkhead.acquire()
    interrupting(monkeypatch, None)
    with pytest.raises(KeyboardInterrupt):
        bulkhead.acquire()
    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.in_use == 0
    bulkhead.acquire()  # the slot is free for the next caller
    assert bulkhead.in_use == 1


def test_a_slot_granted_to_an_interrupted_thread_is_passed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bulkhead = Bulkhead("dep", max_concurrent=1, max_waiting=1, wait_timeout=30)
    bulkhead.acquire()
    interrupting(monkeypatch, bulkhead.release)  # the slot is handed over, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        bulkhead.acquire()
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


def test_an_interrupted_wait_for_a_token_gives_it_back() -> None:
    clock = FakeClock()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter = RateLimiter("dep", rate=1, burst=1, max_wait=10, clock=clock, sleep=interrupted)
    limiter.acquire()
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()  # reserved the next token, then was interrupted
    limiter.max_wait = 0.0
    with pytest.raises(RateLimited) as refused:
        limiter.acquire()
    assert refused.value.retry_after == pytest.approx(1.0)  # not 2.0: the token came back


async def test_a_cancelled_waiter_gives_its_token_back() -> None:
    clock = FakeClock()
    parked = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        parked.set()
        await asyncio.Event().wait()  # until cancelled

    limiter = RateLimiter("dep", rate=1, burst=1, max_wait=10, clock=clock, sleep=sleep)
    await limiter.acquire_async()
    waiter = asyncio.create_task(limiter.acquire_async())
    await parked.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.max_wait = 0.0
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire_async()
    assert waits == [1.0]
    assert refused.value.retry_after == pytest.approx(1.0)


# -- retry predicates that raise keep the original exception ---------------------------------


def test_a_predicate_that_raises_keeps_the_attempts_exception_as_context() -> None:
    clock = FakeClock()
    original = ConnectionError("refused")

    def call() -> None:
        raise original

    policy = buttress.retry(
        on=lambda e: e.response.status_code >= 500,  # type: ignore[attr-defined]
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(AttributeError) as info:
        policy.call(call)
    assert info.value.__context__ is original


def test_a_retry_after_callable_that_raises_keeps_the_attempts_exception() -> None:
    clock = FakeClock()
    original = Boom("x")

    def call() -> None:
        raise original

    def hint(exc: BaseException) -> str:
        raise LookupError("no header")

    policy = buttress.retry(on=Boom, retry_after=hint, clock=clock, sleep=clock.sleep)
    with pytest.raises(LookupError) as info:
        policy.call(call)
    assert info.value.__context__ is original


@pytest.mark.parametrize("on", [KeyboardInterrupt, SystemExit, (ValueError, GeneratorExit)])
def test_retry_and_fallback_refuse_exceptions_they_can_never_catch(on: Any) -> None:
    with pytest.raises(ConfigurationError, match="can never match"):
        buttress.retry(on=on)
    with pytest.raises(ConfigurationError, match="can never match"):
        buttress.fallback(0, on=on)
    buttress.retry(on=BaseException)  # matches every Exception: fine


# -- options that contradict each other ---------------------------------------------------


def test_a_failure_rate_alone_does_not_also_count_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", failure_rate=0.5, minimum_calls=20, clock=clock)
    for _ in range(10):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert state(breaker) == "closed"  # 10 calls, fewer than minimum_calls
    for _ in range(10):
        breaker.call(lambda: None)
    assert state(breaker) == "open"  # 10 of 20 failed


def test_both_counts_when_both_are_asked_for() -> None:
    breaker = CircuitBreaker("dep", failure_rate=0.5, consecutive_failures=3, clock=FakeClock())
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert state(breaker) == "open"


def test_a_small_count_window_shrinks_the_default_minimum_calls() -> None:
    breaker = CircuitBreaker("dep", failure_rate=0.5, window=4, clock=FakeClock())
    for _ in range(2):
        breaker.call(lambda: None)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert state(breaker) == "open"  # judged over 4 calls, not never


def test_a_long_reset_timeout_needs_no_max_reset_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", consecutive_failures=1, reset_timeout=600, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.time_until_half_open == pytest.approx(600)
    with pytest.raises(ConfigurationError, match=r"max_reset_timeout=.*reset_timeout=600"):
        CircuitBreaker("dep", reset_timeout=600, max_reset_timeout=300)


def test_a_bulkhead_queue_with_no_time_to_wait_is_refused_naming_both() -> None:
    with pytest.raises(ConfigurationError, match=r"max_waiting=3 with wait_timeout=0"):
        Bulkhead("dep", max_waiting=3, wait_timeout=0)


# -- generators are refused at decoration ---------------------------------------------------


def numbers() -> Iterator[int]:
    yield 1


async def anumbers() -> AsyncIterator[int]:
    yield 1


def strategies() -> list[Strategy]:
    clock = FakeClock()
    return [
        buttress.retry(on=Boom, clock=clock, sleep=clock.sleep),
        CircuitBreaker("dep", clock=clock),
        Bulkhead("dep"),
        RateLimiter("dep", rate=1, clock=clock),
        buttress.timeout(1, clock=clock),
        buttress.fallback(0, on=Boom),
        Policy(Bulkhead("inner"), name="p"),
    ]


@pytest.mark.parametrize("fn", [numbers, anumbers])
@pytest.mark.parametrize("strategy", strategies(), ids=lambda s: type(s).__name__)
def test_generator_functions_are_refused_with_a_clear_error(
    strategy: Strategy, fn: Callable[[], Any]
) -> None:
    with pytest.raises(ConfigurationError, match="generator function"):
        strategy(fn)
    with pytest.raises(ConfigurationError, match="generator function"):
        strategy.call(fn)


# -- decorators above staticmethod and classmethod ----------------------------------------


async def test_retry_above_staticmethod_and_classmethod_protects_the_coroutine() -> None:
    clock = FakeClock()
    calls: list[str] = []

    class Client:
        @buttress.retry(on=Boom, clock=clock, sleep=clock.sleep, random=lambda: 0.0)
        @staticmethod
        async def fetch() -> str:
            calls.append("static")
            if len(calls) < 2:
                raise Boom
            return "ok"

        @buttress.retry(on=Boom, clock=clock, sleep=clock.sleep, random=lambda: 0.0)
        @classmethod
        async def make(cls) -> str:
            calls.append("class")
            if len(calls) < 4:
                raise Boom
            return cls.__name__

    assert await Client.fetch() == "ok"
    assert await Client().make() == "Client"
    assert calls == ["static", "static", "class", "class"]


# -- sync use inside a running event loop never blocks it -----------------------------------


async def test_sync_bulkhead_inside_a_running_loop_refuses_instead_of_blocking() -> None:
    bulkhead = Bulkhead("dep", max_concurrent=1, max_waiting=5, wait_timeout=30)
    await bulkhead.acquire_async()
    with pytest.warns(ButtressWarning, match="async with") as caught, pytest.raises(BulkheadFull):
        bulkhead.__enter__()
    assert caught[0].filename == __file__
    assert (bulkhead.in_use, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with bulkhead:  # a free slot needs no wait: no warning
            assert bulkhead.in_use == 1


async def test_sync_rate_limiter_inside_a_running_loop_refuses_instead_of_sleeping() -> None:
    clock = FakeClock()
    limiter = RateLimiter("dep", rate=1, burst=1, max_wait=10, clock=clock)
    limiter.acquire()
    with pytest.warns(ButtressWarning, match="async with"), pytest.raises(RateLimited):
        limiter.acquire()


async def test_a_policy_above_classmethod_protects_the_coroutine() -> None:
    clock = FakeClock()
    calls: list[int] = []

    class Client:
        @Policy(buttress.retry(on=Boom, clock=clock, sleep=clock.sleep), Bulkhead("c"))
        @classmethod
        async def fetch(cls) -> str:
            calls.append(1)
            if len(calls) < 2:
                raise Boom
            return cls.__name__

    assert await Client.fetch() == "Client"
    assert len(calls) == 2


def test_the_strategies_never_import_the_redis_store() -> None:
    # The Redis store depends on the backend modules, never the other way round.
    import inspect

    from buttress.resilience import (
        _breaker,
        _breaker_backend,
        _breaker_core,
        _limiter_backend,
        _ratelimit,
    )

    for module in (_breaker, _breaker_backend, _breaker_core, _limiter_backend, _ratelimit):
        assert "._redis" not in inspect.getsource(module), module.__name__


async def test_a_sync_retry_inside_a_running_loop_warns_before_it_sleeps() -> None:
    slept: list[float] = []
    flaky_calls: list[int] = []

    def flaky() -> str:
        flaky_calls.append(1)
        if len(flaky_calls) < 2:
            raise Boom
        return "ok"

    policy = buttress.retry(on=Boom, wait_initial=0.001, wait_max=0.001, jitter="none")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("time.sleep", slept.append)  # the default sleep, without waiting
        with pytest.warns(ButtressWarning, match="blocking every task") as caught:
            assert policy.call(flaky) == "ok"
    assert caught[0].filename == __file__
    assert slept == [0.001]
