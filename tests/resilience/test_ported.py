"""Bulkhead and retry cases ported from the peers' test suites; each names its source.

The breaker and rate-limiter cases live in test_parity.py, where they run on both
backends. Expectations are ours where our semantics differ, and say so. Nothing sleeps:
clocks are fake, sleeps injected, and a bulkhead's timed wait is answered at once.
"""

# Each ported case names its source method in full, however long.
# ruff: noqa: E501
from __future__ import annotations

import asyncio
import functools
import threading
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import buttress
from buttress import Bulkhead, BulkheadFull, ButtressWarning, ConfigurationError, fallback
from buttress.events import Registry, RetryFinished, RetryScheduled
from buttress.resilience import _bulkhead
from buttress.resilience._backoff import Backoff
from buttress.testing import FakeClock, capture_events, set_testing

from ._fakes import Flaky


class Boom(Exception):
    pass


class Other(Exception):
    pass


def retrying(clock: FakeClock, **options: Any) -> buttress.resilience._retry.Retry:
    settings: dict[str, Any] = {
        "on": Boom,
        "clock": clock,
        "sleep": clock.sleep,
        "jitter": "none",
        "budget": None,
    }
    settings.update(options)
    return buttress.retry(**settings)


# -- bulkhead: resilience4j SemaphoreBulkheadTest ------------------------------------------


def test_bulkhead_keeps_its_name() -> None:
    # resilience4j SemaphoreBulkheadTest.shouldReturnTheCorrectName
    assert Bulkhead("test").name == "test"


def test_bulkhead_repr_shows_its_use() -> None:
    # resilience4j SemaphoreBulkheadTest.testToString
    bulkhead = Bulkhead("test", max_concurrent=2)
    bulkhead.acquire()
    assert repr(bulkhead) == "Bulkhead('test', in_use=1/2, waiting=0)"
    bulkhead.release()


async def test_bulkhead_basic_operations_in_threads_and_tasks() -> None:
    # resilience4j SemaphoreBulkheadTest.shouldHandleBasicBulkheadOperationsInBothThreadModes
    bulkhead = Bulkhead("test", max_concurrent=2)
    bulkhead.acquire()
    await bulkhead.acquire_async()
    assert bulkhead.in_use == 2
    with pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)
    with pytest.raises(BulkheadFull):
        await bulkhead.acquire_async()
    bulkhead.release()
    bulkhead.release()
    assert bulkhead.in_use == 0


def test_bulkhead_refuses_zero_concurrent_calls() -> None:
    # resilience4j SemaphoreBulkheadTest.testZeroMaxConcurrentCalls (resilience4j builds
    # a bulkhead that admits nothing; we refuse the configuration)
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        Bulkhead("test", max_concurrent=0)


class _TimedOutEvent(threading.Event):
    """An Event whose timed wait ends at once, unset: the wait timeout has passed."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


class _InterruptedEvent(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        raise KeyboardInterrupt


def test_bulkhead_entry_times_out() -> None:
    # resilience4j SemaphoreBulkheadTest.testEntryTimeout
    registry = Registry()
    bulkhead = Bulkhead("test", max_concurrent=1, max_waiting=1, wait_timeout=10, events=registry)
    bulkhead.acquire()
    fake = types.SimpleNamespace(Event=_TimedOutEvent, Lock=threading.Lock)
    with pytest.MonkeyPatch.context() as patch, registry.capture() as events:
        patch.setattr(_bulkhead, "threading", fake)
        with pytest.raises(BulkheadFull, match="waited too long"):
            bulkhead.acquire()
    assert bulkhead.waiting == 0
    assert any(getattr(e, "reason", None) == "wait_timeout" for e in events)


def test_bulkhead_acquire_interrupted_while_waiting() -> None:
    # resilience4j SemaphoreBulkheadTest.testAcquireWithInterruptDuringTimeout
    # resilience4j SemaphoreBulkheadTest.testTryEnterWithInterruptDuringTimeout
    bulkhead = Bulkhead("test", max_concurrent=1, max_waiting=1, wait_timeout=10)
    bulkhead.acquire()
    fake = types.SimpleNamespace(Event=_InterruptedEvent, Lock=threading.Lock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_bulkhead, "threading", fake)
        with pytest.raises(KeyboardInterrupt):
            bulkhead.acquire()
    assert (bulkhead.in_use, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    assert bulkhead.in_use == 0


# -- bulkhead: Polly BulkheadSpecs, and Polly v8's concurrency limiter ------------------------


@pytest.mark.parametrize("value", [0, -1])
def test_bulkhead_refuses_a_parallelisation_below_one(value: int) -> None:
    # Polly BulkheadSpecs.Should_throw_when_maxParallelization_less_or_equal_to_zero
    # Polly RateLimiterResiliencePipelineBuilderExtensionsTests.AddConcurrencyLimiter_InvalidOptions_Throws
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        Bulkhead("test", max_concurrent=value)


def test_bulkhead_refuses_a_negative_queue() -> None:
    # Polly BulkheadSpecs.Should_throw_when_maxQueuedActions_less_than_zero
    with pytest.raises(ConfigurationError, match="max_waiting"):
        Bulkhead("test", max_waiting=-1)


def test_bulkhead_rejection_names_the_bulkhead() -> None:
    # Polly BulkheadSpecs.Should_call_onBulkheadRejected_with_passed_context
    registry = Registry()
    bulkhead = Bulkhead("payments", max_concurrent=1, events=registry)
    with registry.capture() as events, bulkhead, pytest.raises(BulkheadFull) as info:
        bulkhead.call(lambda: None)
    assert info.value.name == "payments"
    assert [(e.name, e.reason) for e in events if hasattr(e, "reason")] == [("payments", "full")]


async def test_bulkhead_controls_executions_per_specification() -> None:
    # Polly BulkheadSpecsBase.Should_control_executions_per_specification
    bulkhead = Bulkhead("test", max_concurrent=2, max_waiting=2, wait_timeout=30)
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def work() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return "done"

    tasks = [asyncio.create_task(bulkhead.call(work)) for _ in range(5)]
    for _ in range(100):  # bounded: until every task reached the bulkhead
        if bulkhead.in_use == 2 and bulkhead.waiting == 2 and any(t.done() for t in tasks):
            break
        await asyncio.sleep(0)
    assert (bulkhead.in_use, bulkhead.waiting) == (2, 2)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(map(repr, results)).count("'done'") == 4
    assert sum(isinstance(r, BulkheadFull) for r in results) == 1
    assert peak == 2
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_a_rejected_lease_goes_to_the_fallback() -> None:
    # Polly RateLimiterResilienceStrategyTests.Execute_LeaseRejected
    # Polly RateLimiterResilienceStrategyTests.Execute_HappyPath
    bulkhead = Bulkhead("test", max_concurrent=1)
    policy = buttress.Policy(fallback("busy", on=BulkheadFull), bulkhead)

    async def call() -> str:
        return "ok"

    assert await policy.call(call) == "ok"
    await bulkhead.acquire_async()
    assert await policy.call(call) == "busy"
    bulkhead.release()


# -- retry: tenacity test_tenacity.py -----------------------------------------------------------


def test_stop_after_attempt() -> None:
    # tenacity TestStopConditions.test_stop_after_attempt
    clock = FakeClock()
    flaky = Flaky(Boom(), Boom(), Boom("last"), value="ok")
    with pytest.raises(Boom, match="last"):
        retrying(clock, attempts=3).call(flaky)
    assert flaky.calls == 3


def test_stop_after_delay() -> None:
    # tenacity TestStopConditions.test_stop_after_delay
    # tenacity TestStopConditions.test_stop_before_delay (a wait crossing the deadline is not taken)
    clock = FakeClock()
    flaky = Flaky(*[Boom() for _ in range(10)])
    with pytest.raises(Boom):
        retrying(clock, deadline=1.0, wait_initial=0.4, wait_exp_base=1).call(flaky)
    assert flaky.calls == 3  # at 0, 0.4 and 0.8 s; waiting until 1.2 s would cross 1 s
    assert clock.sleeps == pytest.approx([0.4, 0.4])


def test_exponential() -> None:
    # tenacity TestWaitConditions.test_exponential
    backoff = Backoff(1.0, 100.0, 2.0, "none")
    assert [backoff.wait(n, 0.0, lambda: 0.0) for n in range(1, 6)] == [1, 2, 4, 8, 16]


def test_exponential_with_max_wait() -> None:
    # tenacity TestWaitConditions.test_exponential_with_max_wait
    # stamina test_sync.test_backoff_computation_clamps
    backoff = Backoff(1.0, 40.0, 2.0, "none")
    assert [backoff.wait(n, 0.0, lambda: 0.0) for n in (5, 6, 7, 50)] == [16, 32, 40, 40]


def test_exponential_skips_power_after_reaching_max() -> None:
    # tenacity TestWaitConditions.test_exponential_skips_power_after_reaching_max
    # stamina test_sync.test_backoff_no_overflow_on_high_attempt_numbers
    # Polly RetryHelperTests.GetRetryDelay_OverflowWithMaxDelay_ReturnsMaxDelay
    backoff = Backoff(0.1, 5.0, 2.0, "full")
    assert backoff.ceiling(10**6) == 5.0
    assert backoff.wait(10**6, 0.0, lambda: 0.5) == 2.5


def test_wait_random_exponential_stays_within_bounds() -> None:
    # tenacity TestWaitConditions.test_wait_random_exponential
    backoff = Backoff(1.0, 30.0, 2.0, "full")
    for attempt in range(1, 10):
        ceiling = min(30.0, 2.0 ** (attempt - 1))
        assert backoff.wait(attempt, 0.0, lambda: 0.0) == 0.0
        assert 0.0 < backoff.wait(attempt, 0.0, lambda: 0.999) < ceiling


def test_equal_jitter_stays_in_the_upper_half() -> None:
    # tenacity TestWaitConditions.test_wait_exponential_jitter
    # Polly RetryHelperTests.ExponentialWithJitter_Ok
    backoff = Backoff(1.0, 60.0, 2.0, "equal")
    for attempt in range(1, 8):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= backoff.wait(attempt, 0.0, lambda: 0.0) <= ceiling
        assert backoff.wait(attempt, 0.0, lambda: 0.999) <= ceiling


def test_decorrelated_jitter_meets_its_specification() -> None:
    # Polly RetryHelperTests.DecorrelatedJitterBackoffV2_Meets_Specification
    backoff = Backoff(1.0, 20.0, 2.0, "decorrelated")
    previous = 0.0
    for draw in (0.9, 0.1, 0.99, 0.5, 0.999, 0.0):
        wait = backoff.wait(2, previous, functools.partial(float, draw))
        assert 1.0 <= wait <= min(20.0, 3 * max(previous, 1.0))
        previous = wait


def test_retry_if_result() -> None:
    # tenacity TestRetryConditions.test_retry_if_result
    clock = FakeClock()
    results = iter([None, None, "value"])
    policy = retrying(clock, on=(), on_result=lambda r: r is None)
    assert policy.call(lambda: next(results)) == "value"


def test_retry_if_not_result_returns_the_last_result_when_exhausted() -> None:
    # tenacity TestRetryConditions.test_retry_if_not_result
    clock = FakeClock()
    policy = retrying(clock, on=(), on_result=lambda r: r != "good", attempts=3)
    assert policy.call(lambda: "bad") == "bad"


def test_retry_if_exception_of_type() -> None:
    # tenacity TestDecoratorWrapper.test_retry_if_exception_of_type
    clock = FakeClock()
    flaky = Flaky(Boom(), Boom(), value="ok")
    assert retrying(clock).call(flaky) == "ok"
    assert flaky.calls == 3


def test_retry_except_exception_of_type() -> None:
    # tenacity TestDecoratorWrapper.test_retry_except_exception_of_type
    # stamina test_sync.test_wrong_exception
    clock = FakeClock()
    flaky = Flaky(Other(), value="ok")
    with pytest.raises(Other):
        retrying(clock).call(flaky)
    assert flaky.calls == 1


def test_retry_if_exception_message() -> None:
    # tenacity TestDecoratorWrapper.test_retry_if_exception_message
    clock = FakeClock()
    flaky = Flaky(Boom("try again"), Boom("fatal"), value="ok")
    with pytest.raises(Boom, match="fatal"):
        retrying(clock, on=lambda e: "again" in str(e)).call(flaky)
    assert flaky.calls == 2


def test_with_stop_on_exception_reraises_the_last_one_unchanged() -> None:
    # tenacity TestDecoratorWrapper.test_with_stop_on_exception
    # tenacity TestReraiseExceptions.test_reraise_by_default (we always re-raise the original)
    clock = FakeClock()
    last = Boom("last")
    flaky = Flaky(Boom(), last)
    with pytest.raises(Boom) as info:
        retrying(clock, attempts=2).call(flaky)
    assert info.value is last


def test_retry_preserves_argument_defaults() -> None:
    # tenacity TestDecoratorWrapper.test_retry_preserves_argument_defaults
    clock = FakeClock()

    @retrying(clock)
    def greet(name: str, greeting: str = "hello", *, punctuation: str = "!") -> str:
        return f"{greeting} {name}{punctuation}"

    assert greet("you") == "hello you!"
    assert greet("you", "hi", punctuation="?") == "hi you?"
    assert greet.__defaults__ == ("hello",)
    assert greet.__kwdefaults__ == {"punctuation": "!"}
    assert greet("you", punctuation=".") == "hello you."  # binding is unchanged


def test_retry_function_attributes() -> None:
    # tenacity TestDecoratorWrapper.test_retry_function_attributes
    clock = FakeClock()

    def fetch() -> str:
        """Fetch it."""
        return "ok"

    wrapped = retrying(clock)(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch it."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]


def test_before_sleep_reports_each_retry() -> None:
    # tenacity TestBeforeAfterAttempts.test_before_sleep
    # tenacity TestBeforeAfterAttempts.test_after_attempts
    clock = FakeClock()
    with capture_events() as events:
        retrying(clock, name="svc", wait_initial=1).call(Flaky(Boom(), Boom(), value="ok"))
    assert [e for e in events if isinstance(e, RetryScheduled)] == [
        RetryScheduled("svc", 1, 1.0, "Boom"),
        RetryScheduled("svc", 2, 2.0, "Boom"),
    ]


# -- retry: stamina tests/test_sync.py and tests/test_async.py ------------------------------------


def test_stamina_ok() -> None:
    # stamina test_sync.test_ok
    clock = FakeClock()
    flaky = Flaky(value=42)
    assert retrying(clock).call(flaky) == 42
    assert (flaky.calls, clock.sleeps) == (1, [])


def test_stamina_retries() -> None:
    # stamina test_sync.test_retries
    clock = FakeClock()
    flaky = Flaky(Boom(), value=42)
    assert retrying(clock).call(flaky) == 42
    assert flaky.calls == 2


def test_stamina_deadline_zero_warns() -> None:
    # stamina test_sync.test_timeout_zero_warns
    with pytest.warns(ButtressWarning, match="deadline=0"):
        buttress.retry(on=Boom, deadline=0)


def test_stamina_testing_mode() -> None:
    # stamina test_sync.test_testing_mode
    # stamina test_sync.test_retry_inactive (attempts=1: the first error propagates)
    clock = FakeClock()

    def no_sleep(seconds: float) -> None:
        raise AssertionError("slept in test mode")

    with set_testing(attempts=2):
        flaky = Flaky(Boom(), Boom(), value="ok")
        with pytest.raises(Boom):
            retrying(clock, sleep=no_sleep).call(flaky)
        assert flaky.calls == 2
    with set_testing(attempts=1):
        flaky = Flaky(Boom(), value="ok")
        with pytest.raises(Boom):
            retrying(clock, sleep=no_sleep).call(flaky)
        assert flaky.calls == 1


async def test_stamina_async_retries_method() -> None:
    # stamina test_async.test_retries_method
    clock = FakeClock()

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retrying(clock)
        async def fetch(self, value: int) -> int:
            self.calls += 1
            if self.calls < 3:
                raise Boom
            return value

    client = Client()
    assert await client.fetch(7) == 7
    assert client.calls == 3


def test_stamina_generators_are_refused_not_retried() -> None:
    # stamina test_sync.test_retries_also_after_yields (stamina retries a generator; we
    # refuse it at decoration: items already yielded cannot be taken back, see retry.md)
    def items() -> Iterator[int]:
        yield 1

    async def aitems() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(ConfigurationError, match="generator"):
        retrying(FakeClock())(items)
    with pytest.raises(ConfigurationError, match="async generator"):
        retrying(FakeClock())(aitems)


# -- retry: Polly v8 RetryResilienceStrategyTests ---------------------------------------------------


def test_retry_count_is_respected() -> None:
    # Polly RetryResilienceStrategyTests.Retry_RetryCount_Respected
    # Polly RetryResilienceStrategyTests.RetryException_RetryCount_Respected
    clock = FakeClock()
    flaky = Flaky(*[Boom() for _ in range(20)])
    with pytest.raises(Boom):
        retrying(clock, attempts=4).call(flaky)
    assert flaky.calls == 4  # 1 call + 3 retries


def test_max_delay_is_respected() -> None:
    # Polly RetryResilienceStrategyTests.MaxDelay_EnsureRespected
    clock = FakeClock()
    flaky = Flaky(*[Boom() for _ in range(5)], value="ok")
    retrying(clock, wait_initial=1, wait_max=3, deadline=100).call(flaky)
    assert clock.sleeps == [1, 2, 3, 3, 3]


def test_a_delay_from_the_outcome_is_respected() -> None:
    # Polly RetryResilienceStrategyTests.RetryDelayGenerator_Respected
    # Polly RetryResilienceStrategyTests.RetryDelayGenerator_ReturnsNull_EnsureDefaultRetry
    clock = FakeClock()
    flaky = Flaky(Boom("7"), Boom(""), value="ok")
    policy = retrying(clock, wait_initial=0.5, retry_after=lambda e: str(e) or None)
    assert policy.call(flaky) == "ok"
    assert clock.sleeps == [7.0, 1.0]  # the hint, then the backoff (attempt 2)


async def test_cancelled_during_the_delay_is_not_executed_again() -> None:
    # Polly RetryResilienceStrategyTests.ExecuteAsync_CanceledDuringDelay_EnsureNotExecutedAgain
    clock = FakeClock()
    parked = asyncio.Event()
    calls = 0

    async def sleep(seconds: float) -> None:
        parked.set()
        await asyncio.Event().wait()

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    task = asyncio.create_task(retrying(clock, sleep=sleep).call(fail))
    await parked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


async def test_cancelled_during_execution_is_not_executed_again() -> None:
    # Polly RetryResilienceStrategyTests.ExecuteAsync_CanceledDuringExecution_EnsureNotExecutedAgain
    # Polly RetryResilienceStrategyTests.ExecuteAsync_CanceledBeforeExecution_EnsureNotExecuted
    clock = FakeClock()
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retrying(clock, on=Exception).call(cancelled)
    assert calls == 1


def test_a_not_handled_first_attempt_is_reported() -> None:
    # Polly RetryResilienceStrategyTests.Execute_NotHandledOriginalAttempt_EnsureAttemptReported
    clock = FakeClock()
    with capture_events() as events, pytest.raises(Other):
        retrying(clock, name="svc").call(Flaky(Other()))
    assert events == [RetryFinished("svc", 1, "not_retryable", "Other")]


def test_a_handled_final_attempt_is_reported() -> None:
    # Polly RetryResilienceStrategyTests.Execute_HandledFinalAttempt_EnsureAttemptReported
    # Polly RetryResilienceStrategyTests.IsLastAttempt_Ok
    clock = FakeClock()
    with capture_events() as events, pytest.raises(Boom):
        retrying(clock, name="svc", attempts=2).call(Flaky(Boom(), Boom()))
    assert events[-1] == RetryFinished("svc", 2, "exhausted", "Boom")


def test_zero_delay_never_sleeps() -> None:
    # Polly RetryResilienceStrategyTests.RetryDelayGenerator_ZeroDelay_NoTimeProviderCalls
    clock = FakeClock()
    policy = retrying(clock, retry_after=lambda e: 0)
    assert policy.call(Flaky(Boom(), value="ok")) == "ok"
    assert clock.sleeps == []


def test_a_retry_wraps_a_partial_and_keeps_its_name() -> None:
    # tenacity TestRetryingName.test_get_fn_name_decorator
    clock = FakeClock()

    def add(a: int, b: int) -> int:
        return a + b

    with capture_events() as events:
        assert retrying(clock)(functools.partial(add, 1))(2) == 3
    assert events[0].name.endswith("add")
