"""The breaker's state machine alone: pure, driven by an explicit clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.resilience._breaker_core import (
    FAILURE,
    IGNORED,
    REJECTED,
    SUCCESS,
    BreakerConfig,
    BreakerCore,
    CountWindow,
    TimeWindow,
)

from ._clock import state


def states(core: BreakerCore) -> list[tuple[str, str, str]]:
    moved: list[tuple[str, str, str]] = [(t.old, t.new, t.reason) for t in core.transitions]
    core.transitions.clear()
    return moved


def fail(core: BreakerCore, now: float, times: int = 1, duration: float = 0.0) -> None:
    for _ in range(times):
        ticket = core.admit(now)
        assert ticket != REJECTED
        core.record(now, ticket, FAILURE, duration)


def succeed(core: BreakerCore, now: float, times: int = 1, duration: float = 0.0) -> None:
    for _ in range(times):
        ticket = core.admit(now)
        assert ticket != REJECTED
        core.record(now, ticket, SUCCESS, duration)


def test_consecutive_failures_open_and_a_success_resets_the_count() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=3, reset_timeout=10))
    fail(core, 0, 2)
    succeed(core, 0)
    fail(core, 0, 2)
    assert state(core) == "closed"
    fail(core, 0)
    assert state(core) == "open"
    assert states(core) == [("closed", "open", "consecutive_failures")]
    assert core.admit(9.9) == REJECTED
    assert core.retry_after(5.0) == pytest.approx(5.0)


def test_half_open_admits_at_most_its_permits_and_closes_after_all_succeed() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=10, half_open_permits=2))
    fail(core, 0)
    first, second = core.admit(10), core.admit(10)
    assert state(core) == "half_open"
    assert REJECTED not in (first, second)
    assert core.admit(10) == REJECTED  # both permits are out
    core.record(11, first, SUCCESS, 0)
    assert core.admit(11) == REJECTED  # one success so far: still no third trial
    core.record(11, second, SUCCESS, 0)
    assert state(core) == "closed"
    assert [s[1] for s in states(core)] == ["open", "half_open", "closed"]


def test_a_failed_trial_reopens_with_a_growing_capped_timeout() -> None:
    config = BreakerConfig(
        consecutive_failures=1, reset_timeout=10, reset_backoff=2, max_reset_timeout=25
    )
    core = BreakerCore(config)
    fail(core, 0)
    fail(core, 10)  # trial fails: open for 20
    assert state(core) == "open"
    assert core.retry_after(10) == pytest.approx(20)
    fail(core, 30)  # next trial fails: 40 capped at 25
    assert core.retry_after(30) == pytest.approx(25)
    succeed(core, 55)  # trial succeeds: closed, timeout back to 10
    fail(core, 56)
    assert core.retry_after(56) == pytest.approx(10)


def test_an_ignored_trial_gives_its_permit_back() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=1))
    fail(core, 0)
    ticket = core.admit(1)
    assert core.admit(1) == REJECTED
    core.record(1, ticket, IGNORED, 0)
    assert state(core) == "half_open"
    assert core.admit(1) != REJECTED


def test_outcomes_admitted_before_a_transition_do_not_count_after_it() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=2, reset_timeout=1))
    early = core.admit(0)
    fail(core, 0, 2)
    assert state(core) == "open"
    trial = core.admit(1)
    assert core.record(1, early, FAILURE, 0) is False  # stale: would wrongly reopen
    assert state(core) == "half_open"
    core.record(1, trial, SUCCESS, 0)
    assert state(core) == "closed"


def test_failure_rate_waits_for_minimum_calls() -> None:
    core = BreakerCore(
        BreakerConfig(consecutive_failures=None, failure_rate=0.5, window=10, minimum_calls=4)
    )
    fail(core, 0, 3)
    assert state(core) == "closed"  # 3 calls < minimum 4
    succeed(core, 0)  # the 4th call: 3 of 4 failed, 75% >= 50%
    assert state(core) == "open"
    assert states(core) == [("closed", "open", "failure_rate")]


def test_failure_rate_over_a_count_window() -> None:
    core = BreakerCore(
        BreakerConfig(consecutive_failures=None, failure_rate=0.5, window=4, minimum_calls=4)
    )
    succeed(core, 0, 3)
    fail(core, 0)
    assert state(core) == "closed"  # 1 of 4
    fail(core, 0)  # window: s s f f -> 50%
    assert state(core) == "open"
    assert states(core)[-1][2] == "failure_rate"


def test_slow_call_rate_opens_and_slow_trials_reopen() -> None:
    config = BreakerConfig(
        consecutive_failures=None,
        slow_call_rate=0.5,
        slow_call_duration=1.0,
        window=2,
        minimum_calls=2,
        reset_timeout=5,
    )
    core = BreakerCore(config)
    succeed(core, 0, duration=0.1)
    succeed(core, 0, duration=2.0)
    assert state(core) == "open"
    assert states(core)[-1][2] == "slow_call_rate"
    succeed(core, 5, duration=3.0)  # a slow trial counts against the dependency
    assert state(core) == "open"


def test_time_window_forgets_old_outcomes() -> None:
    core = BreakerCore(
        BreakerConfig(
            consecutive_failures=None,
            failure_rate=0.5,
            window=10.0,
            window_type="time",
            minimum_calls=3,
        )
    )
    fail(core, 0, 2)
    succeed(core, 11, 2)  # the two failures are out of the window by now
    fail(core, 11)  # 1 of 3 in the window
    assert state(core) == "closed"
    assert core.window_totals(11) == (3, 1, 0)


def test_count_window_keeps_exact_totals() -> None:
    window = CountWindow(3)
    for failure in (True, False, True, True):
        window.add(0, failure, slow=not failure)
    assert window.totals(0) == (3, 2, 1)


def test_time_window_buckets_expire_one_by_one() -> None:
    window = TimeWindow(2.0)  # 20 buckets of 0.1 s
    window.add(0.0, True, False)
    window.add(1.05, False, True)
    assert window.totals(1.9) == (2, 1, 1)
    assert window.totals(2.05) == (1, 0, 1)
    assert window.totals(3.2) == (0, 0, 0)
    window.add(3.0, True, True)  # a clock step back lands in the newest bucket
    assert window.totals(3.2) == (1, 1, 1)


def test_forced_states_and_reset() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1))
    core.force("forced_open")
    assert core.admit(0) == REJECTED
    assert core.retry_after(0) is None
    core.force("forced_closed")
    fail(core, 0, 5)
    assert state(core) == "forced_closed"
    core.reset()
    assert state(core) == "closed"
    assert [s[1] for s in states(core)] == ["forced_open", "forced_closed", "closed"]


outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200)


@given(size=st.integers(1, 20), calls=outcomes)
def test_count_window_matches_a_recount_of_the_last_calls(
    size: int, calls: list[tuple[bool, bool]]
) -> None:
    window = CountWindow(size)
    for failure, slow in calls:
        window.add(0, failure, slow)
    last = calls[-size:]
    assert window.totals(0) == (len(last), sum(f for f, _ in last), sum(s for _, s in last))


@given(
    seconds=st.integers(1, 50),
    steps=st.lists(st.tuples(st.integers(0, 300), st.booleans(), st.booleans()), max_size=100),
    later=st.integers(0, 300),
)
def test_time_window_matches_a_recount_of_the_buckets_in_reach(
    seconds: int, steps: list[tuple[int, bool, bool]], later: int
) -> None:
    window = TimeWindow(float(seconds))
    width = seconds / 20
    now = 0.0
    seen: list[tuple[float, bool, bool]] = []
    for gap, failure, slow in steps:
        now += gap / 100
        window.add(now, failure, slow)
        seen.append((now, failure, slow))
    now += later / 100
    newest = math.floor(now / width)
    kept = [(f, s) for t, f, s in seen if math.floor(t / width) > newest - 20]
    assert window.totals(now) == (len(kept), sum(f for f, _ in kept), sum(s for _, s in kept))
