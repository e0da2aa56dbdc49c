"""Hedging: the first answer wins, losers are cancelled (async) or abandoned (sync).

No timing is asserted: a "slow" attempt blocks on an event the test controls, so which
attempt wins never depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

import buttress
from buttress import ConfigurationError, Policy
from buttress.events import HedgeSent, HedgeWon
from buttress.resilience._latency import LatencyEstimator
from buttress.testing import FakeClock, capture_events

BOUND = 10.0  # seconds: a bounded wait on a condition, never a sleep


class Script:
    """Attempt ``n`` (0-based) blocks until ``release`` is set when ``n`` is in ``slow``."""

    def __init__(self, *, slow: tuple[int, ...] = (0,), fail: tuple[int, ...] = ()) -> None:
        self.slow = slow
        self.fail = fail
        self.calls = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            index = self.calls
            self.calls += 1
        if index in self.slow:
            assert self.release.wait(BOUND)
        if index in self.fail:
            raise ValueError(f"attempt {index}")
        return f"answer {index}"


def test_a_slow_primary_loses_to_the_hedge_and_its_answer_is_discarded() -> None:
    discarded: list[str] = []
    gone = threading.Event()

    def discard(value: str) -> None:
        discarded.append(value)
        gone.set()

    script = Script()
    policy = buttress.hedge(delay=0.01, discard=discard, name="svc")
    with capture_events() as events:
        assert policy.call(script) == "answer 1"
    assert events == [HedgeSent("svc", 2, 0.01), HedgeWon("svc", 2)]
    script.release.set()
    assert gone.wait(BOUND)
    assert discarded == ["answer 0"]


def test_a_quick_primary_sends_no_hedge() -> None:
    script = Script(slow=())
    with capture_events() as events:
        assert buttress.hedge(delay=60, name="svc").call(script) == "answer 0"
    assert script.calls == 1
    assert events == []


def test_max_hedged_bounds_the_attempts() -> None:
    script = Script(slow=(0, 1))
    policy = buttress.hedge(delay=0.01, max_hedged=2, name="svc")
    with capture_events() as events:
        assert policy.call(script) == "answer 2"
    script.release.set()
    assert [type(e).__name__ for e in events] == ["HedgeSent", "HedgeSent", "HedgeWon"]
    assert events[-1] == HedgeWon("svc", 3)


def test_a_failure_does_not_start_a_hedge_and_is_raised_unchanged() -> None:
    raised: list[ValueError] = []

    def fail() -> None:
        raised.append(ValueError("once"))
        raise raised[-1]

    with pytest.raises(ValueError) as info:
        buttress.hedge(delay=60).call(fail)
    assert info.value is raised[0]
    assert len(raised) == 1


def test_when_every_attempt_fails_the_last_failure_is_raised() -> None:
    script = Script(slow=(0,), fail=(0, 1))

    def run() -> None:
        # The hedge fails first; the primary, released then, fails last.
        threading.Timer(0.05, script.release.set).start()
        buttress.hedge(delay=0.01).call(script)

    with pytest.raises(ValueError, match="attempt 0"):
        run()


def test_an_empty_budget_sends_no_hedge() -> None:
    script = Script()
    threading.Timer(0.05, script.release.set).start()
    with capture_events() as events:
        result = buttress.hedge(delay=0.01, budget=0, budget_floor=0).call(script)
    assert result == "answer 0"
    assert events == []


def test_with_no_free_thread_the_call_runs_unhedged_in_the_callers_thread() -> None:
    script = Script()
    policy = buttress.hedge(delay=0.01, threads=1)
    threads: list[str] = []

    def first() -> str:
        threads.append(threading.current_thread().name)
        return script()

    winner: list[str] = []
    runner = threading.Thread(target=lambda: winner.append(policy.call(first)))
    runner.start()
    # While the only worker holds the primary, a second call cannot get a thread at all.
    assert _wait_for(lambda: script.calls >= 1)
    mine: list[str] = []

    def inline() -> str:
        mine.append(threading.current_thread().name)
        return "inline"

    assert policy.call(inline) == "inline"
    assert mine == [threading.current_thread().name]
    script.release.set()
    runner.join(BOUND)
    assert winner == ["answer 0"]  # its hedge found no thread either


def test_attempts_run_in_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    assert buttress.hedge(delay=60).call(var.get) == "caller"


def test_the_delay_follows_the_observed_percentile_on_the_injected_clock() -> None:
    clock = FakeClock()
    policy = buttress.hedge(delay=5, percentile=50, clock=clock)

    def answer() -> str:
        clock.advance(0.02)
        return "ok"

    assert policy.current_delay() == 5.0  # too few samples yet
    for _ in range(20):
        policy.call(answer)
    assert policy.current_delay() == pytest.approx(0.02)


def test_copies_have_their_own_budget_and_estimate() -> None:
    clock = FakeClock()
    policy = buttress.hedge(delay=5, percentile=50, clock=clock)
    for _ in range(20):
        policy.call(lambda: clock.advance(0.02))
    copy = policy.copy(name="other")
    assert copy.name == "other"
    assert copy.current_delay() == 5.0
    assert policy.current_delay() == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"delay": -1}, "delay"),
        ({"percentile": 0}, "percentile"),
        ({"percentile": 101}, "percentile"),
        ({"max_hedged": 0}, "max_hedged"),
        ({"threads": 0}, "threads"),
        ({"budget": 2}, "budget"),
        ({"discard": 3}, "discard"),
    ],
)
def test_bad_values_name_themselves(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        buttress.hedge(**kwargs)


def test_a_hedge_composes_in_a_policy() -> None:
    script = Script()
    policy = Policy(buttress.retry(on=ValueError), buttress.hedge(delay=0.01), name="svc")
    with capture_events() as events:
        assert policy.call(script) == "answer 1"
    script.release.set()
    assert HedgeWon("svc", 2) in events


# --- async ------------------------------------------------------------------------------


async def test_async_losers_are_cancelled_before_the_call_returns() -> None:
    cancelled = asyncio.Event()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return f"answer {calls}"

    with capture_events() as events:
        assert await buttress.hedge(delay=0.01, name="svc").call(attempt) == "answer 2"
    assert cancelled.is_set()
    assert events == [HedgeSent("svc", 2, 0.01), HedgeWon("svc", 2)]


async def test_async_a_quick_primary_sends_no_hedge_and_failures_are_raised() -> None:
    async def quick() -> str:
        return "ok"

    raised: list[ValueError] = []

    async def fail() -> None:
        raised.append(ValueError())
        raise raised[-1]

    with capture_events() as events:
        assert await buttress.hedge(delay=60).call(quick) == "ok"
        with pytest.raises(ValueError) as info:
            await buttress.hedge(delay=60).call(fail)
    assert events == []
    assert info.value is raised[0]


async def test_async_a_caller_cancelled_cancels_every_attempt() -> None:
    started = asyncio.Event()
    cancelled = 0

    async def hang() -> None:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    task = asyncio.ensure_future(buttress.hedge(delay=0.01, max_hedged=2).call(hang))
    await asyncio.wait_for(started.wait(), BOUND)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled >= 1


async def test_async_a_loser_that_answers_anyway_is_discarded_by_a_coroutine() -> None:
    closed: list[str] = []

    async def close(value: str) -> None:
        closed.append(value)

    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return "late answer"  # swallows the cancellation: an answer nobody wants
        return "answer 2"

    policy = buttress.hedge(delay=0.01, discard=close)
    assert await policy.call(attempt) == "answer 2"
    assert closed == ["late answer"]


# --- the estimator ----------------------------------------------------------------------


def test_the_estimator_gives_the_nearest_rank_percentile_of_recent_samples() -> None:
    estimator = LatencyEstimator(percentile=90, size=100, min_samples=10, refresh=1)
    for value in range(1, 10):
        estimator.observe(float(value))
    assert _value(estimator) is None  # 9 samples: fewer than min_samples
    estimator.observe(10.0)
    assert _value(estimator) == 9.0
    for _ in range(100):  # the ring forgets the old samples
        estimator.observe(0.5)
    assert _value(estimator) == 0.5
    assert estimator.count == 110


def _wait_for(condition: Any) -> bool:
    done = threading.Event()
    for _ in range(1000):
        if condition():
            return True
        done.wait(0.01)
    return False


def _value(estimator: LatencyEstimator) -> float | None:
    return estimator.value


def test_a_copy_spending_a_retry_budget_hedges_only_within_it() -> None:
    spent = buttress.retry(on=ValueError, budget=0.5, budget_floor=0)  # no calls deposited yet
    policy = buttress.hedge(delay=0.01).copy(name="svc", spend_from=spent)
    script = Script()
    threading.Timer(0.05, script.release.set).start()
    with capture_events() as events:
        assert policy.call(script) == "answer 0"  # the retry's budget has no room
    assert events == []
    roomy = buttress.hedge(delay=0.01).copy(name="svc", spend_from=buttress.retry(on=ValueError))
    script = Script()
    assert roomy.call(script) == "answer 1"
    script.release.set()
    with pytest.raises(ConfigurationError, match="spend_from"):
        policy.copy(name="x", spend_from=buttress.hedge())  # type: ignore[arg-type]


def test_a_result_on_result_rejects_is_no_answer_while_another_may_come() -> None:
    discarded: list[str] = []
    gone = threading.Event()

    def discard(value: str) -> None:
        discarded.append(value)
        gone.set()

    release = threading.Event()
    calls = 0
    lock = threading.Lock()

    def attempt() -> str:
        nonlocal calls
        with lock:
            calls += 1
            mine = calls
        if mine == 1:
            assert release.wait(BOUND)
            return "good"
        release.set()  # the hedge answers "busy", then lets the primary answer
        return "busy"

    policy = buttress.hedge(delay=0.01, on_result=lambda r: r == "busy", discard=discard)
    assert policy.call(attempt) == "good"
    assert gone.wait(BOUND)
    assert discarded == ["busy"]


def test_when_every_answer_is_rejected_the_last_is_returned() -> None:
    policy = buttress.hedge(delay=60, on_result=lambda r: r == "busy")
    assert policy.call(lambda: "busy") == "busy"


async def test_async_a_rejected_result_waits_for_the_others() -> None:
    closed: list[str] = []
    release = asyncio.Event()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.wait_for(release.wait(), BOUND)
            return "good"
        release.set()
        return "busy"

    policy = buttress.hedge(
        delay=0.01, on_result=lambda r: r == "busy", discard=lambda r: closed.append(r)
    )
    assert await policy.call(attempt) == "good"
    assert closed == ["busy"]
