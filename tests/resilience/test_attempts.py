"""Attempt loops (``for``/``async for attempt in retrying(...)``) and per-outcome waits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import buttress
from buttress import ConfigurationError, TimedOut
from buttress.deadline import deadline_scope
from buttress.events import RetryFinished, RetryScheduled
from buttress.strategies import Attempt, Retry
from buttress.testing import FakeClock, capture_events, set_testing


def loop(policy: Retry, body: Callable[[Attempt], object]) -> None:
    for attempt in buttress.retrying(policy):
        with attempt:
            body(attempt)


async def async_loop(policy: Retry, body: Callable[[Attempt], object]) -> None:
    async for attempt in buttress.retrying(policy):
        with attempt:
            body(attempt)


def make(clock: FakeClock, **kwargs: Any) -> Retry:
    options: dict[str, Any] = {"on": ValueError, "clock": clock, "sleep": clock.sleep}
    options.update(kwargs)
    return buttress.retry(**options)


def test_a_sync_loop_retries_until_the_block_succeeds() -> None:
    clock = FakeClock()
    numbers = []
    with capture_events() as events:
        for attempt in buttress.retrying(make(clock, name="svc", random=lambda: 0.5)):
            with attempt:
                numbers.append(attempt.number)
                if attempt.number < 3:
                    raise ValueError(attempt.number)
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [0.05, 0.1]
    assert events == [
        RetryScheduled("svc", 1, 0.05, "ValueError"),
        RetryScheduled("svc", 2, 0.1, "ValueError"),
        RetryFinished("svc", 3, "success", ""),
    ]


def test_a_first_success_ends_the_loop_with_one_event() -> None:
    clock = FakeClock()
    with capture_events() as events:
        for attempt in buttress.retrying(make(clock, name="svc")):
            with attempt:
                pass
    assert events == [RetryFinished("svc", 1, "success", "")]
    assert clock.sleeps == []


def test_the_last_exception_leaves_the_loop_unchanged() -> None:
    clock = FakeClock()
    raised: list[ValueError] = []

    def body(attempt: Attempt) -> None:
        raised.append(ValueError(attempt.number))
        raise raised[-1]

    with capture_events() as events, pytest.raises(ValueError) as info:
        loop(make(clock, attempts=3, name="svc"), body)
    assert info.value is raised[-1]
    assert len(raised) == 3
    assert info.value.__context__ is None
    assert events[-1] == RetryFinished("svc", 3, "exhausted", "ValueError")


def test_other_exceptions_pass_through_at_once() -> None:
    clock = FakeClock()
    count = 0

    def body(attempt: Attempt) -> None:
        nonlocal count
        count += 1
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        loop(make(clock), body)
    assert count == 1


def test_the_loop_honours_the_retry_deadline() -> None:
    clock = FakeClock()
    numbers = []
    # Waits 1, 2, 4 (no jitter): the third would end at 7 s, past the 5 s deadline.
    policy = make(clock, deadline=5, wait_initial=1, wait_max=10, jitter="none", name="svc")

    def body(attempt: Attempt) -> None:
        numbers.append(attempt.number)
        raise ValueError

    with capture_events() as events, pytest.raises(ValueError):
        loop(policy, body)
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [1.0, 2.0]
    assert events[-1] == RetryFinished("svc", 3, "deadline", "ValueError")


def test_the_loop_honours_the_context_deadline() -> None:
    clock = FakeClock()

    def body(attempt: Attempt) -> None:
        raise ValueError

    with deadline_scope(0.5, clock=clock), pytest.raises(ValueError):
        loop(make(clock, wait_initial=0.4, jitter="none"), body)
    assert clock.sleeps == [0.4]  # the second wait (0.8) would have crossed it


def test_a_passed_context_deadline_raises_timed_out_before_the_first_attempt() -> None:
    clock = FakeClock()
    ran = False

    def body(attempt: Attempt) -> None:
        nonlocal ran
        ran = True

    with deadline_scope(0, clock=clock), pytest.raises(TimedOut):
        loop(make(clock), body)
    assert not ran


def test_an_oversleep_past_the_deadline_reraises_the_held_error() -> None:
    clock = FakeClock()
    errors: list[ValueError] = []

    def oversleep(seconds: float) -> None:
        clock.advance(10)

    policy = make(clock, deadline=1, wait_initial=0.1, sleep=oversleep, name="svc")

    def body(attempt: Attempt) -> None:
        errors.append(ValueError())
        raise errors[-1]

    with capture_events() as events, pytest.raises(ValueError) as info:
        loop(policy, body)
    assert len(errors) == 1
    assert info.value is errors[0]
    assert events[-1] == RetryFinished("svc", 1, "deadline", "ValueError")


def test_the_loop_spends_the_retry_budget() -> None:
    clock = FakeClock()
    # No floor: one call deposits 1, a 0.5 share allows no whole retry.
    policy = make(clock, budget=0.5, budget_floor=0, name="svc")
    count = 0

    def body(attempt: Attempt) -> None:
        nonlocal count
        count += 1
        raise ValueError

    with capture_events() as events, pytest.raises(ValueError):
        loop(policy, body)
    assert count == 1
    assert events[-1] == RetryFinished("svc", 1, "budget", "ValueError")


def test_a_block_left_without_with_ends_the_loop() -> None:
    clock = FakeClock()
    numbers = [attempt.number for attempt in buttress.retrying(make(clock))]
    assert numbers == [1]


def test_an_attempt_reused_after_the_loop_moved_on_is_refused() -> None:
    clock = FakeClock()
    kept = []
    for attempt in buttress.retrying(make(clock)):
        kept.append(attempt)
        with attempt:
            if attempt.number == 1:
                raise ValueError
    with pytest.raises(ConfigurationError), kept[0]:
        pass


def test_retrying_refuses_anything_but_a_retry() -> None:
    with pytest.raises(ConfigurationError):
        buttress.retrying(buttress.timeout(1))  # type: ignore[arg-type]


def test_cancellation_like_errors_are_never_retried() -> None:
    clock = FakeClock()
    count = 0

    def body(attempt: Attempt) -> None:
        nonlocal count
        count += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop(buttress.retry(on=BaseException, clock=clock), body)
    assert count == 1


def test_test_mode_caps_attempts_and_never_sleeps() -> None:
    clock = FakeClock()
    count = 0

    def body(attempt: Attempt) -> None:
        nonlocal count
        count += 1
        raise ValueError

    with set_testing(attempts=2), pytest.raises(ValueError):
        loop(make(clock), body)
    assert count == 2
    assert clock.sleeps == []


async def test_an_async_loop_retries_with_an_awaitable_sleep() -> None:
    clock = FakeClock()
    numbers = []
    policy = make(clock, sleep=clock.async_sleep, random=lambda: 0.5, name="svc")
    with capture_events() as events:
        async for attempt in buttress.retrying(policy):
            with attempt:
                numbers.append(attempt.number)
                if attempt.number < 2:
                    raise ValueError
    assert numbers == [1, 2]
    assert clock.sleeps == [0.05]
    assert events[-1] == RetryFinished("svc", 2, "success", "")


async def test_an_async_loop_reraises_the_last_exception_and_honours_the_deadline() -> None:
    clock = FakeClock()
    raised: list[ValueError] = []
    policy = make(clock, sleep=clock.async_sleep, deadline=5, wait_initial=1, jitter="none")

    def body(attempt: Attempt) -> None:
        raised.append(ValueError())
        raise raised[-1]

    with pytest.raises(ValueError) as info:
        await async_loop(policy, body)
    assert info.value is raised[-1]
    assert clock.sleeps == [1.0, 2.0]


async def test_an_async_loop_spends_the_budget_and_reads_the_context_deadline() -> None:
    clock = FakeClock()

    with deadline_scope(0, clock=clock), pytest.raises(TimedOut):
        await async_loop(make(clock, sleep=clock.async_sleep), lambda attempt: None)
    count = 0
    policy = make(clock, sleep=clock.async_sleep, budget=0.5, budget_floor=0)

    def body(attempt: Attempt) -> None:
        nonlocal count
        count += 1
        raise ValueError

    with pytest.raises(ValueError):
        await async_loop(policy, body)
    assert count == 1


# --- waits chosen per outcome -----------------------------------------------------------


class Busy(Exception):
    pass


def test_the_wait_callable_chooses_per_exception() -> None:
    clock = FakeClock()

    def wait(outcome: object, attempt: int) -> float | None:
        if isinstance(outcome, Busy):
            return 0.0  # try again at once
        return None  # everything else: the backoff

    flaky = iter([Busy(), ValueError(), Busy()])

    def call() -> str:
        error = next(flaky, None)
        if error is not None:
            raise error
        return "ok"

    policy = make(clock, on=(Busy, ValueError), wait=wait, jitter="none", wait_initial=0.5)
    assert policy.call(call) == "ok"
    assert clock.sleeps == [1.0]  # the backoff's wait after attempt 2; none for Busy


def test_the_wait_callable_sees_rejected_results_and_the_attempt_number() -> None:
    clock = FakeClock()
    seen: list[tuple[object, int]] = []

    def wait(outcome: object, attempt: int) -> timedelta:
        seen.append((outcome, attempt))
        return timedelta(seconds=attempt * 10)

    answers = iter(["busy", "busy", "done"])
    policy = make(clock, on=(), on_result=lambda r: r == "busy", wait=wait, wait_max=1)
    assert policy.call(lambda: next(answers)) == "done"
    assert seen == [("busy", 1), ("busy", 2)]
    assert clock.sleeps == [10.0, 20.0]  # chosen waits are not capped by wait_max


def test_the_servers_wait_comes_before_the_wait_callable_and_keeps_its_own_cap() -> None:
    clock = FakeClock()
    answers = iter(["120", None, "ok"])
    policy = make(
        clock,
        on=(),
        on_result=lambda r: r != "ok",
        retry_after=lambda r: r,
        retry_after_max=30,
        wait=lambda outcome, attempt: 2.0,
        wait_max=0.5,
        wait_initial=0.1,
    )
    assert policy.call(lambda: next(answers)) == "ok"
    assert clock.sleeps == [30.0, 2.0]  # the server's 120 s capped at 30; then the callable


def test_a_chosen_wait_that_crosses_the_deadline_is_not_taken() -> None:
    clock = FakeClock()
    policy = make(clock, deadline=5, wait=lambda outcome, attempt: 60.0, name="svc")
    with capture_events() as events, pytest.raises(ValueError):
        policy.call(_always(ValueError()))
    assert clock.sleeps == []
    assert events[-1] == RetryFinished("svc", 1, "deadline", "ValueError")


def test_a_bad_chosen_wait_names_itself() -> None:
    clock = FakeClock()
    policy = make(clock, wait=lambda outcome, attempt: -1)
    with pytest.raises(ConfigurationError, match="-1") as info:
        policy.call(_always(ValueError("underneath")))
    assert isinstance(info.value.__context__, ValueError)


def test_wait_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="wait"):
        buttress.retry(on=ValueError, wait=2.0)  # type: ignore[arg-type]


def test_copy_replaces_the_result_predicate_and_keeps_the_wait() -> None:
    clock = FakeClock()
    policy = make(clock, wait=lambda outcome, attempt: 3.0, jitter="none")
    answers = iter(["again", "fine"])
    copied = policy.copy(name="other", on_result=lambda r: r == "again")
    assert copied.name == "other"
    assert copied.call(lambda: next(answers)) == "fine"
    assert clock.sleeps == [3.0]
    assert copied.attempts == policy.attempts
    assert copied.retry_after_max == policy.retry_after_max == 60.0
    with pytest.raises(ConfigurationError):
        policy.copy(name="x", retry_after=5)  # type: ignore[arg-type]


def _always(error: Exception) -> Any:
    def call() -> None:
        raise error

    return call
