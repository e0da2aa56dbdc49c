from __future__ import annotations

import gc
import inspect
import sys
import warnings
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import buttress
from buttress import ButtressWarning, ConfigurationError, TimedOut
from buttress.deadline import deadline_scope
from buttress.events import Event, Registry, RetryFinished, RetryScheduled
from buttress.strategies import Retry
from buttress.testing import FakeClock, capture_events, set_testing

from ._fakes import Flaky


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds}s in test mode")


def make(clock: FakeClock, **kwargs: Any) -> Retry:
    options: dict[str, Any] = {"on": ValueError, "clock": clock, "sleep": clock.sleep}
    options.update(kwargs)
    return buttress.retry(**options)


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_retries_until_success_and_says_so() -> None:
    clock = FakeClock()
    flaky = Flaky(ValueError("a"), ValueError("b"), value=42)
    with capture_events() as events:
        assert make(clock, name="svc", random=lambda: 0.5).call(flaky) == 42
    assert flaky.calls == 3
    assert events == [
        RetryScheduled("svc", 1, 0.05, "ValueError"),
        RetryScheduled("svc", 2, 0.1, "ValueError"),
        RetryFinished("svc", 3, "success", ""),
    ]
    assert clock.sleeps == [0.05, 0.1]


def test_exhausted_retries_reraise_the_last_exception_unchanged() -> None:
    clock = FakeClock()
    last = ValueError("last")
    flaky = Flaky(ValueError("1"), ValueError("2"), last)
    with capture_events() as events, pytest.raises(ValueError) as info:
        make(clock, attempts=3, name="svc").call(flaky)
    assert info.value is last
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    assert flaky.calls == 3
    assert events[-1] == RetryFinished("svc", 3, "exhausted", "ValueError")
    assert kinds(events) == ["RetryScheduled", "RetryScheduled", "RetryFinished"]


def test_other_exceptions_are_not_retried() -> None:
    flaky = Flaky(KeyError("k"))
    with capture_events() as events, pytest.raises(KeyError):
        make(FakeClock(), name="svc").call(flaky)
    assert flaky.calls == 1
    assert events == [RetryFinished("svc", 1, "not_retryable", "KeyError")]


def test_on_accepts_a_tuple_and_a_predicate() -> None:
    clock = FakeClock()
    flaky = Flaky(KeyError(), ValueError(), value=1)
    assert make(clock, on=(KeyError, ValueError)).call(flaky) == 1
    flaky = Flaky(ValueError("transient"), ValueError("fatal"))
    with pytest.raises(ValueError, match="fatal"):
        make(clock, on=lambda e: "transient" in str(e)).call(flaky)
    assert flaky.calls == 2


def test_result_predicate_retries_responses() -> None:
    clock = FakeClock()
    responses = iter([503, 503, 200])
    with capture_events() as events:
        status = make(clock, on=(), on_result=lambda s: s == 503, name="http").call(
            lambda: next(responses)
        )
    assert status == 200
    assert [e.error_type for e in events if isinstance(e, RetryScheduled)] == ["result", "result"]
    # Exhausted on results: the last result is returned, as the last error would be raised.
    always = make(clock, on=(), on_result=lambda s: s == 503, attempts=2, name="http")
    with capture_events() as events:
        assert always.call(lambda: 503) == 503
    assert events[-1] == RetryFinished("http", 2, "exhausted", "result")


def test_a_wait_that_would_cross_the_deadline_is_not_taken() -> None:
    clock = FakeClock()
    flaky = Flaky(*(ValueError(str(i)) for i in range(10)))
    strategy = make(clock, deadline=1.0, wait_initial=0.3, wait_max=0.3, jitter="none", name="d")
    with capture_events() as events, pytest.raises(ValueError, match="3"):
        strategy.call(flaky)
    # 0.3 + 0.3 + 0.3 = 0.9; a fourth wait would end at 1.2 > 1.0.
    assert clock.sleeps == [0.3, 0.3, 0.3]
    assert events[-1] == RetryFinished("d", 4, "deadline", "ValueError")


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(min_value=1, max_value=30),
    deadline=st.floats(min_value=0.0, max_value=30.0),
    initial=st.floats(min_value=0.0, max_value=2.0),
    spread=st.floats(min_value=0.0, max_value=10.0),
    jitter=st.sampled_from(["full", "equal", "decorrelated", "none"]),
    durations=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=40),
    seed=st.randoms(use_true_random=False),
)
def test_deadline_and_attempts_are_never_exceeded(
    attempts: int,
    deadline: float,
    initial: float,
    spread: float,
    jitter: Any,
    durations: list[float],
    seed: Any,
) -> None:
    clock = FakeClock()
    calls = 0
    starts: list[float] = []

    def slow_failure() -> None:
        nonlocal calls
        starts.append(clock.now)
        clock.advance(durations[calls % len(durations)])
        calls += 1
        raise ValueError(calls)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ButtressWarning)  # attempts=1 and the like are legal
        strategy = make(
            clock,
            attempts=attempts,
            deadline=deadline,
            wait_initial=initial,
            wait_max=initial + spread,
            jitter=jitter,
            random=seed.random,
            budget=None,
        )
    begin = clock.now
    with pytest.raises(ValueError):
        strategy.call(slow_failure)
    assert calls <= attempts
    for start in starts[1:]:  # every retry started within the deadline
        assert start - begin <= deadline + 1e-9
    # No wait ever ran past the deadline.
    assert sum(clock.sleeps) + sum(durations[i % len(durations)] for i in range(calls - 1)) <= (
        deadline + 1e-9
    )


def test_the_context_deadline_is_honoured() -> None:
    clock = FakeClock()
    flaky = Flaky(*(ValueError(str(i)) for i in range(10)))
    strategy = make(clock, wait_initial=1.0, wait_max=1.0, jitter="none", name="ctx")
    with deadline_scope(2.5, clock=clock), capture_events() as events, pytest.raises(ValueError):
        strategy.call(flaky)
    assert clock.sleeps == [1.0, 1.0]
    assert events[-1] == RetryFinished("ctx", 3, "deadline", "ValueError")


def test_a_passed_deadline_raises_timed_out_before_running() -> None:
    clock = FakeClock()
    flaky = Flaky(value=1)
    with deadline_scope(1.0, clock=clock):
        clock.advance(1.0)
        with capture_events() as events, pytest.raises(TimedOut) as info:
            make(clock, name="late").call(flaky)
    assert flaky.calls == 0
    assert info.value.name == "late"
    assert events == [RetryFinished("late", 0, "deadline", "TimedOut")]


def test_an_oversleep_past_the_deadline_stops_before_the_next_attempt() -> None:
    clock = FakeClock()

    def oversleep(seconds: float) -> None:
        clock.advance(seconds + 10.0)

    flaky = Flaky(ValueError("1"), ValueError("2"))
    strategy = make(clock, sleep=oversleep, deadline=5.0, jitter="none", name="o")
    with capture_events() as events, pytest.raises(ValueError, match="1"):
        strategy.call(flaky)
    assert flaky.calls == 1
    assert events[-1] == RetryFinished("o", 1, "deadline", "ValueError")


class Unavailable(Exception):
    def __init__(self, retry_after: str | None) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def test_server_driven_waits_are_honoured_up_to_their_own_cap_not_wait_max() -> None:
    clock = FakeClock()
    flaky = Flaky(
        Unavailable("2"), Unavailable("30"), Unavailable("900"), Unavailable(None), value="ok"
    )
    strategy = make(
        clock,
        on=Unavailable,
        retry_after=lambda e: e.retry_after,
        wait_max=5.0,
        deadline=3600,
        jitter="none",
    )
    assert strategy.call(flaky) == "ok"
    # The server said 2, then 30 (above wait_max, honoured), then 900 (capped at
    # retry_after_max, 60 s by default); no hint: the backoff.
    assert clock.sleeps == [2.0, 30.0, 60.0, 0.8]


def test_retry_after_max_is_its_own_option() -> None:
    clock = FakeClock()
    flaky = Flaky(Unavailable("30"), value="ok")
    strategy = make(clock, on=Unavailable, retry_after=lambda e: e.retry_after, retry_after_max=10)
    assert strategy.call(flaky) == "ok"
    assert clock.sleeps == [10.0]
    with pytest.raises(ConfigurationError, match="retry_after_max"):
        make(clock, retry_after_max=-1)


class Response:
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.status = status
        self.headers = {"Retry-After": retry_after} if retry_after else {}


async def test_server_driven_waits_from_results() -> None:
    clock = FakeClock()
    responses = iter([Response(429, "3"), Response(503), Response(200)])

    async def get() -> Response:
        return next(responses)

    strategy = make(
        clock,
        sleep=clock.async_sleep,
        on=(),
        on_result=lambda r: r.status in (429, 503),
        retry_after=lambda r: r.headers.get("Retry-After"),
        jitter="none",
    )
    assert (await strategy.call(get)).status == 200
    assert clock.sleeps == [3.0, 0.2]


def test_exhausted_budget_stops_retrying_and_says_why() -> None:
    clock = FakeClock()
    strategy = make(clock, budget=0.0, budget_floor=0.1, name="b")  # one retry per 10 s
    with capture_events() as events, pytest.raises(ValueError, match="2"):
        strategy.call(Flaky(ValueError("1"), ValueError("2"), ValueError("3")))
    assert events[-1] == RetryFinished("b", 2, "budget", "ValueError")
    assert kinds(events).count("RetryScheduled") == 1


def test_the_budget_is_shared_by_every_call_of_a_policy() -> None:
    clock = FakeClock()
    strategy = make(clock, budget=0.0, budget_floor=0.2)  # two retries per 10 s
    for _ in range(3):
        with pytest.raises(ValueError):
            strategy.call(
                Flaky(ValueError(), ValueError(), ValueError()),
            )
    assert len(clock.sleeps) == 2


def test_test_mode_never_sleeps_and_caps_attempts() -> None:
    clock = FakeClock()
    strategy = make(clock, sleep=no_sleep)
    with set_testing(attempts=2):
        flaky = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))
        with pytest.raises(ValueError, match="2"):
            strategy.call(flaky)
    assert flaky.calls == 2
    flaky = Flaky(ValueError("1"), ValueError("2"))
    with set_testing(attempts=5):
        assert strategy.call(flaky) == "ok"


def test_test_mode_ignores_the_budget() -> None:
    strategy = make(FakeClock(), sleep=no_sleep, budget=0.0, budget_floor=0.1)
    with set_testing(attempts=3):
        for _ in range(5):
            flaky = Flaky(ValueError("1"), ValueError("2"))
            assert strategy.call(flaky) == "ok"


def test_first_attempt_success_reuses_one_event() -> None:
    strategy = buttress.retry(on=ValueError, name="hot")
    with capture_events() as events:
        strategy.call(lambda: 1)
        strategy.call(lambda: 2)
    assert events == [RetryFinished("hot", 1, "success", "")] * 2
    assert events[0] is events[1]


def test_first_attempt_success_keeps_no_memory() -> None:
    registry = Registry()
    seen: list[Event] = []
    registry.add(seen.append)

    @buttress.retry(on=ValueError, events=registry)
    def ok(x: int) -> int:
        return x

    ok(1)
    seen.clear()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for _ in range(2000):
            ok(1)
        grown = sys.getallocatedblocks() - before
    finally:
        gc.enable()
    assert len(seen) == 2000
    assert all(e is seen[0] for e in seen)
    # The list of events grows by a few blocks; anything per call would show as thousands.
    assert grown < 200


def test_unnamed_decorators_report_the_function_name() -> None:
    @buttress.retry(on=ValueError, attempts=2)
    def fetch() -> None:
        raise ValueError

    with capture_events() as events, pytest.raises(ValueError):
        fetch()
    name = f"{__name__}.test_unnamed_decorators_report_the_function_name.<locals>.fetch"
    assert {e.name for e in events} == {name}
    with capture_events() as events, pytest.raises(ValueError):
        buttress.retry(on=ValueError, attempts=2).call(Flaky(ValueError(), ValueError()))
    assert {e.name for e in events} == {"retry"}


def test_decorating_keeps_the_signature() -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    wrapped = buttress.retry(on=ValueError)(add)
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert wrapped(1, b=3) == 4


def test_repr_shows_the_settings() -> None:
    strategy = buttress.retry(on=ValueError, name="x", attempts=4, deadline=timedelta(seconds=9))
    assert repr(strategy) == (
        "retry(name='x', attempts=4, deadline=9.0, wait_initial=0.1, wait_max=5.0, "
        "jitter='full', budget=RetryBudget(ratio=0.2, floor_per_second=1.0, window=10.0))"
    )
    assert strategy.name == "x"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"on": 42}, "42"),
        ({"on": (ValueError, 1)}, "1"),
        ({"on": ()}, "retries nothing"),
        ({"on": ValueError, "on_result": 3}, "3"),
        ({"on": ValueError, "attempts": 0}, "0"),
        ({"on": ValueError, "attempts": 2.5}, "2.5"),
        ({"on": ValueError, "deadline": -1}, "-1"),
        ({"on": ValueError, "deadline": "10"}, "'10'"),
        ({"on": ValueError, "wait_initial": float("nan")}, "nan"),
        ({"on": ValueError, "wait_max": 0.01}, "0.01"),
        ({"on": ValueError, "wait_exp_base": 0.5}, "0.5"),
        ({"on": ValueError, "jitter": "some"}, "some"),
        ({"on": ValueError, "retry_after": "5"}, "5"),
        ({"on": ValueError, "budget": 1.5}, "1.5"),
        ({"on": ValueError, "budget_floor": -1}, "-1"),
        ({"on": ValueError, "name": ""}, "''"),
    ],
)
def test_bad_values_name_themselves(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.").replace("(", r"\(")):
        buttress.retry(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 1},
        {"deadline": 0},
        {"deadline": 0.05},
        {"budget": 0, "budget_floor": 0},
    ],
)
def test_surprising_values_warn_at_the_callers_line(kwargs: dict[str, Any]) -> None:
    with pytest.warns(ButtressWarning) as record:
        buttress.retry(on=ValueError, **kwargs)
    assert record[0].filename == __file__


async def test_async_retries_with_an_injected_async_sleep() -> None:
    clock = FakeClock()
    flaky = Flaky(ValueError("a"), ValueError("b"), value=7)
    strategy = make(clock, sleep=clock.async_sleep, jitter="none", name="a")

    @strategy
    async def fetch() -> object:
        return await flaky.run_async()

    with capture_events() as events:
        assert await fetch() == 7
    assert clock.sleeps == [0.1, 0.2]
    assert events[-1] == RetryFinished("a", 3, "success", "")


async def test_async_exhaustion_deadline_and_budget() -> None:
    clock = FakeClock()
    last = ValueError("last")
    flaky = Flaky(ValueError(), last)
    with pytest.raises(ValueError) as info:
        await make(clock, attempts=2).call(flaky.run_async)
    assert info.value is last
    strategy = make(clock, deadline=0.5, wait_initial=0.3, wait_max=0.3, jitter="none", name="d")
    with capture_events() as events, pytest.raises(ValueError):
        await strategy.call(Flaky(*[ValueError()] * 5).run_async)
    assert events[-1] == RetryFinished("d", 2, "deadline", "ValueError")
    strategy = make(clock, budget=0.0, budget_floor=0.01, name="b")
    with capture_events() as events, pytest.raises(ValueError):
        await strategy.call(Flaky(ValueError(), ValueError()).run_async)
    assert events[-1] == RetryFinished("b", 1, "budget", "ValueError")


async def test_async_results_and_test_mode() -> None:
    responses = iter([503, 200])

    async def get() -> int:
        return next(responses)

    with set_testing(attempts=3):
        strategy = buttress.retry(on=(), on_result=lambda s: s == 503, sleep=no_sleep)
        assert await strategy.call(get) == 200


async def test_async_passed_deadline_raises_timed_out() -> None:
    clock = FakeClock()
    flaky = Flaky()
    with deadline_scope(0.0, clock=clock), pytest.raises(TimedOut):
        await make(clock).call(flaky.run_async)
    assert flaky.calls == 0


async def test_async_oversleep_stops() -> None:
    clock = FakeClock()

    async def oversleep(seconds: float) -> None:
        clock.advance(100.0)

    flaky = Flaky(ValueError("1"), ValueError("2"))
    with pytest.raises(ValueError, match="1"):
        await make(clock, sleep=oversleep).call(flaky.run_async)
