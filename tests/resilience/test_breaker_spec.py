"""The breaker's state machine as a specification: every transition, threshold and ticket.

Each test states one rule of the breaker's behaviour with concrete numbers, so that a
change to any comparison, counter reset or constant in the core changes an outcome here
(``make mutate`` checks that it does).
"""

from __future__ import annotations

import pytest

from buttress.resilience._breaker_backend import LocalBreaker
from buttress.resilience._breaker_core import (
    FAILURE,
    IGNORED,
    REJECTED,
    SUCCESS,
    BreakerConfig,
    BreakerCore,
    CountWindow,
    OpeningRule,
    Reason,
    State,
    TimeWindow,
    Transition,
    ratio,
)
from buttress.testing import FakeClock

from ._clock import state


def moves(core: BreakerCore) -> list[tuple[str, str, str]]:
    moved = [(str(t.old), str(t.new), str(t.reason)) for t in core.transitions]
    core.transitions.clear()
    return moved


def call(core: BreakerCore, now: float, outcome: int, duration: float = 0.0) -> bool:
    ticket = core.admit(now)
    assert ticket != REJECTED, f"rejected at {now}"
    return core.record(now, ticket, SUCCESS if outcome == 0 else FAILURE, duration)


def open_by_one_failure(**options: object) -> BreakerCore:
    config = BreakerConfig(consecutive_failures=1, reset_timeout=10, **options)  # type: ignore[arg-type]
    core = BreakerCore(config)
    call(core, 0, 1)
    assert state(core) == "open"
    moves(core)
    return core


# --- recovery, twice ----------------------------------------------------------------------


def test_a_second_recovery_cycle_starts_from_fresh_counts() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=3, reset_timeout=10))
    for now in (0, 1, 2):
        call(core, now, 1)
    assert state(core) == "open"
    call(core, 12, 0)  # the trial succeeds: closed again
    assert state(core) == "closed"
    # Two failures after recovery are two, not five: the old run of failures is gone.
    call(core, 13, 1)
    call(core, 14, 1)
    assert state(core) == "closed"
    call(core, 15, 1)
    assert state(core) == "open"
    call(core, 25, 0)
    assert state(core) == "closed"
    assert [m[2] for m in moves(core)] == [
        "consecutive_failures",
        "reset_timeout",
        "half_open_success",
        "consecutive_failures",
        "reset_timeout",
        "half_open_success",
    ]


def test_successes_of_a_failed_round_do_not_carry_into_the_next() -> None:
    core = open_by_one_failure(half_open_permits=2)
    first, second = core.admit(10), core.admit(10)
    core.record(10, first, SUCCESS, 0)
    core.record(10, second, FAILURE, 0)  # one success, then a failure: open again
    assert state(core) == "open"
    # The next round needs two successes of its own: both permits are free again.
    a, b = core.admit(20), core.admit(20)
    assert REJECTED not in (a, b)
    assert core.admit(20) == REJECTED
    core.record(20, a, SUCCESS, 0)
    assert state(core) == "half_open"  # the old round's success does not count
    core.record(20, b, SUCCESS, 0)
    assert state(core) == "closed"


def test_a_window_of_a_closed_period_is_gone_after_recovery() -> None:
    core = BreakerCore(
        BreakerConfig(consecutive_failures=None, failure_rate=0.5, window=4, minimum_calls=4)
    )
    for outcome in (0, 0, 1, 1):
        call(core, 0, outcome)
    assert state(core) == "open"
    call(core, 30, 0)  # trial succeeds
    assert core.window_totals(30) == (0, 0, 0)
    for outcome in (1, 0, 0):
        call(core, 31, outcome)
    assert core.window_totals(31) == (3, 1, 0)
    call(core, 31, 1)  # 2 of 4: at the rate
    assert state(core) == "open"


def test_open_timeout_grows_per_failed_trial_and_recovery_resets_it() -> None:
    core = open_by_one_failure(reset_backoff=3, max_reset_timeout=100)
    assert core.retry_after(0) == 10
    call(core, 10, 1)
    assert core.retry_after(10) == 30
    call(core, 40, 1)
    assert core.retry_after(40) == 90
    call(core, 130, 1)
    assert core.retry_after(130) == 100  # capped
    call(core, 230, 0)
    assert state(core) == "closed"
    call(core, 231, 1)
    assert core.retry_after(231) == 10  # back to reset_timeout


# --- stale tickets after every transition ----------------------------------------------


def test_a_closed_ticket_outcome_after_opening_is_not_counted() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=10))
    stale = core.admit(0)
    call(core, 0, 1)
    assert core.record(1, stale, FAILURE, 0) is False
    assert core.record(1, stale, SUCCESS, 0) is False
    assert moves(core) == [("closed", "open", "consecutive_failures")]
    assert core.retry_after(1) == 9


def test_a_closed_ticket_outcome_after_recovery_is_not_counted() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=10))
    stale = core.admit(0)
    call(core, 0, 1)
    call(core, 10, 0)
    assert state(core) == "closed"
    assert core.record(11, stale, FAILURE, 0) is False
    assert state(core) == "closed"


def test_a_trial_outcome_after_the_round_closed_is_not_counted() -> None:
    core = open_by_one_failure(half_open_permits=1, half_open_max_wait=5)
    hung = core.admit(10)
    # No verdict within 5 s: the round is reclaimed; the new trial closes the breaker.
    fresh = core.admit(15)
    assert fresh != REJECTED
    assert moves(core) == [
        ("open", "half_open", "reset_timeout"),
        ("half_open", "half_open", "half_open_max_wait"),
    ]
    core.record(15, fresh, SUCCESS, 0)
    assert state(core) == "closed"
    assert core.record(16, hung, FAILURE, 0) is False
    assert state(core) == "closed"


def test_a_late_trial_failure_of_a_reclaimed_round_does_not_reopen() -> None:
    core = open_by_one_failure(half_open_max_wait=5)
    hung = core.admit(10)
    assert core.admit(14.9) == REJECTED  # the round is still waiting for a verdict
    assert core.retry_after(12) == 3
    fresh = core.admit(15)
    assert core.record(15.5, hung, FAILURE, 0) is False
    assert state(core) == "half_open"
    assert core.record(16, fresh, SUCCESS, 0) is True
    assert state(core) == "closed"


def test_tickets_from_before_a_forced_state_or_reset_are_not_counted() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1))
    before_force = core.admit(0)
    core.force("forced_closed")
    assert core.record(0, before_force, FAILURE, 0) is False
    # Forced closed: calls pass and nothing they do is counted.
    ticket = core.admit(0)
    assert ticket != REJECTED
    assert core.record(0, ticket, FAILURE, 0) is False
    assert state(core) == "forced_closed"
    core.reset()
    before_reset = core.admit(0)
    core.reset()  # closed already: no transition, but a new generation
    assert moves(core) == [
        ("closed", "forced_closed", "manual"),
        ("forced_closed", "closed", "manual"),
    ]
    assert core.record(0, before_reset, FAILURE, 0) is False
    assert state(core) == "closed"
    assert core.record(0, core.admit(0), FAILURE, 0) is True
    assert state(core) == "open"


def test_reset_when_closed_forgets_failures_counted_so_far() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=2))
    call(core, 0, 1)
    core.reset()
    call(core, 0, 1)
    assert state(core) == "closed"
    call(core, 0, 1)
    assert state(core) == "open"


def test_the_closed_ticket_is_the_generation_and_negative_otherwise() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=1, reset_timeout=10))
    assert core.closed_ticket == 0 == core.admit(0)
    call(core, 0, 1)
    assert core.closed_ticket == -1  # open
    trial = core.admit(10)
    assert core.closed_ticket == -1  # half-open
    assert trial == (2 << 1) | 1  # generation 2, a trial
    core.record(10, trial, SUCCESS, 0)
    assert core.closed_ticket == 3 << 1 == core.admit(11)
    core.reset()
    assert core.closed_ticket == 4 << 1 == core.admit(11)
    core.force("forced_open")
    assert core.closed_ticket == -1
    core.force("forced_closed")
    assert core.closed_ticket == -1
    assert core.admit(0) == 6 << 1


# --- the closed fast path ----------------------------------------------------------------


def test_a_success_on_the_fast_path_ends_a_run_of_failures() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=2))
    call(core, 0, 1)
    assert call(core, 0, 0) is True
    call(core, 0, 1)
    assert state(core) == "closed"
    call(core, 0, 1)
    assert state(core) == "open"


def test_a_success_with_a_rate_threshold_is_counted_in_the_window() -> None:
    core = BreakerCore(
        BreakerConfig(consecutive_failures=2, failure_rate=0.9, window=10, minimum_calls=10)
    )
    call(core, 0, 1)
    call(core, 0, 0)
    assert core.window_totals(0) == (2, 1, 0)
    call(core, 0, 1)
    assert state(core) == "closed"  # the success ended the run


def test_a_trial_success_is_not_taken_for_a_closed_call() -> None:
    core = open_by_one_failure()
    trial = core.admit(10)
    assert core.record(10, trial, SUCCESS, 0) is True
    assert moves(core) == [
        ("open", "half_open", "reset_timeout"),
        ("half_open", "closed", "half_open_success"),
    ]


def test_local_breaker_admits_closed_calls_without_the_core_and_rejects_when_open() -> None:
    clock = FakeClock(0)
    announced: list[Transition] = []
    backend = LocalBreaker(
        BreakerConfig(consecutive_failures=1, reset_timeout=10), clock, announced.extend
    )
    ticket = backend.admit()
    assert ticket == 0
    assert backend.record(ticket, FAILURE, 0) is True
    assert announced == [Transition(State.CLOSED, State.OPEN, Reason.CONSECUTIVE_FAILURES)]
    assert backend.admit() == REJECTED
    assert backend.rejection() == (State.OPEN, 10)
    clock.advance(4)
    assert backend.retry_after() == 6
    clock.advance(6)
    trial = backend.admit()
    assert trial == (2 << 1) | 1
    assert announced[-1] == Transition(State.OPEN, State.HALF_OPEN, Reason.RESET_TIMEOUT)
    assert backend.current_state() is State.HALF_OPEN
    assert backend.record(trial, SUCCESS, 0) is True
    assert announced[-1] == Transition(State.HALF_OPEN, State.CLOSED, Reason.HALF_OPEN_SUCCESS)
    assert len(announced) == 3
    assert backend.local is True


def test_local_breaker_steering_announces_unless_told_not_to() -> None:
    clock = FakeClock(0)
    announced: list[Transition] = []
    backend = LocalBreaker(BreakerConfig(reset_timeout=10), clock, announced.extend)
    backend.force("forced_open", announce=False)
    assert announced == []
    assert backend.current_state() is State.FORCED_OPEN
    assert backend.retry_after() is None
    backend.reset(announce=False)
    assert announced == []
    backend.force("forced_open")
    backend.reset()
    backend.trip(Reason.STORE_UNAVAILABLE)
    assert announced == [
        Transition(State.CLOSED, State.FORCED_OPEN, Reason.MANUAL),
        Transition(State.FORCED_OPEN, State.CLOSED, Reason.MANUAL),
        Transition(State.CLOSED, State.OPEN, Reason.STORE_UNAVAILABLE),
    ]
    assert backend.retry_after() == 10
    backend.trip(Reason.STORE_UNAVAILABLE)  # open already: nothing to announce
    assert len(announced) == 3


async def test_local_breaker_async_calls_are_the_sync_ones() -> None:
    clock = FakeClock(0)
    announced: list[Transition] = []
    backend = LocalBreaker(BreakerConfig(consecutive_failures=1), clock, announced.extend)
    ticket = await backend.admit_async()
    assert await backend.record_async(ticket, FAILURE, 0) is True
    assert backend.current_state() is State.OPEN
    assert await backend.admit_async() == REJECTED


def test_local_breaker_does_not_announce_when_nothing_moved() -> None:
    calls: list[list[Transition]] = []
    backend = LocalBreaker(BreakerConfig(consecutive_failures=2), FakeClock(0), calls.append)
    backend.record(backend.admit(), FAILURE, 0)
    backend.record(backend.admit(), SUCCESS, 0)
    backend.reset()  # closed: no transition
    assert calls == []


# --- thresholds at their boundaries ------------------------------------------------------


def rate_core(**options: object) -> BreakerCore:
    config: dict[str, object] = {"consecutive_failures": None, "window": 10, "minimum_calls": 10}
    config.update(options)
    return BreakerCore(BreakerConfig(**config))  # type: ignore[arg-type]


@pytest.mark.parametrize(("failures", "opens"), [(5, True), (4, False)])
def test_failure_rate_opens_at_the_rate_not_below(failures: int, opens: bool) -> None:
    core = rate_core(failure_rate=0.5)
    for i in range(10):
        call(core, 0, 0 if i >= failures else 1)
    assert state(core) == ("open" if opens else "closed")
    if opens:
        assert moves(core) == [("closed", "open", "failure_rate")]


@pytest.mark.parametrize(("calls", "opens"), [(6, True), (5, False)])
def test_minimum_calls_is_the_first_count_that_is_judged(calls: int, opens: bool) -> None:
    core = rate_core(failure_rate=0.5, minimum_calls=6)
    for _ in range(calls):
        call(core, 0, 1)
    assert state(core) == ("open" if opens else "closed")


@pytest.mark.parametrize(("failures", "opens"), [(55, True), (54, False)])
def test_55_of_100_failures_reach_a_055_rate(failures: int, opens: bool) -> None:
    # In floats 0.55 * 100 is 55.00000000000001: the rate is judged in integers.
    core = rate_core(failure_rate=0.55, window=100, minimum_calls=100)
    for i in range(100):
        call(core, 0, 1 if i < failures else 0)
    assert state(core) == ("open" if opens else "closed")


@pytest.mark.parametrize(("duration", "slow"), [(2.0, True), (2.5, True), (1.999, False)])
def test_a_call_is_slow_from_the_slow_call_duration_on(duration: float, slow: bool) -> None:
    core = rate_core(slow_call_rate=1.0, slow_call_duration=2.0, minimum_calls=1)
    call(core, 0, 0, duration)
    assert core.window_totals(0) == ((0, 0, 0) if slow else (1, 0, 0))
    assert state(core) == ("open" if slow else "closed")
    if slow:
        assert moves(core) == [("closed", "open", "slow_call_rate")]


@pytest.mark.parametrize(("slow_calls", "opens"), [(3, True), (2, False)])
def test_slow_call_rate_opens_at_the_rate_not_below(slow_calls: int, opens: bool) -> None:
    core = rate_core(slow_call_rate=0.3, slow_call_duration=1.0)
    for i in range(10):
        call(core, 0, 0, 5.0 if i >= 10 - slow_calls else 0.1)
    assert state(core) == ("open" if opens else "closed")


def test_slow_failures_count_as_failures_and_as_slow() -> None:
    core = rate_core(failure_rate=0.9, slow_call_rate=0.9, slow_call_duration=1.0)
    call(core, 0, 1, 3.0)
    call(core, 0, 0, 3.0)
    call(core, 0, 0, 0.5)
    assert core.window_totals(0) == (3, 1, 2)


def test_failure_rate_is_judged_before_slow_call_rate() -> None:
    core = rate_core(failure_rate=0.5, slow_call_rate=0.5, slow_call_duration=1.0, minimum_calls=2)
    call(core, 0, 1, 3.0)
    call(core, 0, 1, 3.0)
    assert moves(core) == [("closed", "open", "failure_rate")]


def test_an_ignored_call_is_neither_counted_nor_slow() -> None:
    core = rate_core(failure_rate=0.5, slow_call_rate=0.5, slow_call_duration=1.0, minimum_calls=1)
    ticket = core.admit(0)
    assert core.record(0, ticket, IGNORED, 10.0) is True
    assert core.window_totals(0) == (0, 0, 0)
    assert state(core) == "closed"


def test_consecutive_failures_open_at_the_limit_not_before() -> None:
    rule = OpeningRule(consecutive_failures=3, failure_ratio=None, slow_ratio=None, minimum_calls=1)
    assert rule.after_failure(2) is None
    assert rule.after_failure(3) is Reason.CONSECUTIVE_FAILURES
    assert rule.after_failure(4) is Reason.CONSECUTIVE_FAILURES
    assert rule.counting is False
    off = OpeningRule(
        consecutive_failures=None, failure_ratio=(1, 2), slow_ratio=None, minimum_calls=1
    )
    assert off.after_failure(1000) is None
    assert off.counting is True


def test_the_rule_judges_integer_fractions_at_and_below_the_threshold() -> None:
    rule = OpeningRule.of(
        BreakerConfig(
            consecutive_failures=None, failure_rate=0.25, slow_call_rate=0.75, minimum_calls=8
        )
    )
    assert rule.failure_ratio == (1, 4)
    assert rule.slow_ratio == (3, 4)
    assert rule.judge(7, 7, 7) is None  # below minimum_calls
    assert rule.judge(8, 2, 0) is Reason.FAILURE_RATE
    assert rule.judge(8, 1, 5) is None
    assert rule.judge(8, 1, 6) is Reason.SLOW_CALL_RATE
    assert rule.judge(12, 2, 8) is None
    assert rule.judge(12, 3, 0) is Reason.FAILURE_RATE
    assert ratio(0.55) == (11, 20)


def test_a_consecutive_limit_alone_keeps_no_window() -> None:
    core = BreakerCore(BreakerConfig(consecutive_failures=3, window=50))
    call(core, 0, 1)
    call(core, 0, 0)
    assert core.window_totals(0) == (0, 0, 0)


# --- half-open trials and the slow-call rate --------------------------------------------


def test_a_fast_trial_closes_when_a_slow_call_rate_is_set() -> None:
    core = open_by_one_failure(slow_call_rate=0.5, slow_call_duration=2.0)
    trial = core.admit(10)
    core.record(11, trial, SUCCESS, 1.9)
    assert state(core) == "closed"


def test_a_slow_trial_reopens_when_a_slow_call_rate_is_set() -> None:
    core = open_by_one_failure(slow_call_rate=0.5, slow_call_duration=2.0, reset_backoff=2)
    trial = core.admit(10)
    core.record(12, trial, SUCCESS, 2.0)
    assert moves(core)[-1] == ("half_open", "open", "half_open_failure")
    assert core.retry_after(12) == 20


def test_a_slow_trial_closes_when_only_a_duration_is_set() -> None:
    core = open_by_one_failure(slow_call_duration=2.0)
    trial = core.admit(10)
    core.record(13, trial, SUCCESS, 3.0)
    assert state(core) == "closed"


def test_an_ignored_trial_frees_its_permit_and_decides_nothing() -> None:
    core = open_by_one_failure()
    trial = core.admit(10)
    assert core.admit(10) == REJECTED
    assert core.record(10, trial, IGNORED, 0) is True
    assert state(core) == "half_open"
    assert core.retry_after(10) == 0
    again = core.admit(10)
    assert again != REJECTED
    core.record(10, again, SUCCESS, 0)
    assert state(core) == "closed"


def test_open_admits_exactly_when_the_open_period_ends() -> None:
    core = open_by_one_failure()
    assert core.admit(9.999) == REJECTED
    assert core.retry_after(9.5) == 0.5
    assert core.retry_after(11) == 0.0  # never negative
    assert core.admit(10) != REJECTED
    assert state(core) == "half_open"


def test_half_open_retry_after_is_the_round_when_every_permit_is_out() -> None:
    core = open_by_one_failure(half_open_permits=2, half_open_max_wait=4)
    core.admit(10)
    assert core.retry_after(10) == 0.0  # a permit is left
    core.admit(11)
    assert core.retry_after(11) == 3.0
    assert core.retry_after(20) == 0.0
    assert BreakerConfig(reset_timeout=7).trial_wait == 7
    assert BreakerConfig(reset_timeout=7, half_open_max_wait=2).trial_wait == 2


def test_a_reclaimed_round_gives_every_permit_back() -> None:
    core = open_by_one_failure(half_open_permits=2, half_open_max_wait=5)
    core.admit(10)
    core.admit(10)
    assert core.admit(14) == REJECTED
    a, b = core.admit(15), core.admit(15)
    assert REJECTED not in (a, b)
    assert core.admit(15) == REJECTED
    assert core.admit(19.9) == REJECTED  # the new round waits its own 5 s
    assert core.retry_after(19) == 1


# --- steering: trip, force, reset --------------------------------------------------------


def test_trip_opens_a_closed_or_half_open_breaker_only() -> None:
    core = BreakerCore(BreakerConfig(reset_timeout=10))
    core.trip(5, Reason.STORE_UNAVAILABLE)
    assert moves(core) == [("closed", "open", "store_unavailable")]
    assert core.retry_after(5) == 10
    core.trip(6, Reason.STORE_UNAVAILABLE)  # open already: the period is not extended
    assert moves(core) == []
    assert core.retry_after(6) == 9
    core.admit(15)
    core.trip(16, Reason.STORE_UNAVAILABLE)
    assert moves(core) == [
        ("open", "half_open", "reset_timeout"),
        ("half_open", "open", "store_unavailable"),
    ]
    for forced in ("forced_open", "forced_closed"):
        core.force(forced)
        moves(core)
        core.trip(20, Reason.STORE_UNAVAILABLE)
        assert state(core) == forced


def test_force_to_the_same_state_moves_nothing() -> None:
    core = BreakerCore(BreakerConfig())
    core.force("forced_open")
    core.force("forced_open")
    assert moves(core) == [("closed", "forced_open", "manual")]
    assert core.admit(1e9) == REJECTED
    assert core.retry_after(0) is None


def test_reset_restores_the_first_timeout_after_backoff() -> None:
    core = open_by_one_failure(reset_backoff=2)
    call(core, 10, 1)
    assert core.retry_after(10) == 20
    core.reset()
    assert moves(core)[-1] == ("open", "closed", "manual")
    assert core.retry_after(10) == 0.0
    call(core, 10, 1)
    assert core.retry_after(10) == 10


# --- windows -------------------------------------------------------------------------------


def test_count_window_drops_the_oldest_outcome_when_full() -> None:
    window = CountWindow(3)
    window.add(0, True, True)
    window.add(0, False, True)
    window.add(0, True, False)
    assert window.totals(0) == (3, 2, 2)
    window.add(0, False, False)  # the first (failed, slow) call leaves
    assert window.totals(0) == (3, 1, 1)
    window.add(0, False, False)
    window.add(0, False, False)
    assert window.totals(0) == (3, 0, 0)


def test_time_window_of_20_seconds_keeps_one_second_buckets() -> None:
    window = TimeWindow(20)
    window.add(0.5, True, False)
    window.add(1.0, False, True)
    window.add(19.9, False, False)
    assert window.totals(19.9) == (3, 1, 1)
    assert window.totals(20.0) == (2, 0, 1)  # the bucket [0, 1) is out
    assert window.totals(20.99) == (2, 0, 1)
    assert window.totals(21.0) == (1, 0, 0)
    assert window.totals(38.99) == (1, 0, 0)
    assert window.totals(39.0) == (0, 0, 0)  # the bucket [19, 20) is out


def test_time_window_forgets_everything_after_a_long_silence() -> None:
    window = TimeWindow(10)
    window.add(0, True, True)
    window.add(9.9, True, False)
    window.add(30.0, False, False)  # more than a whole window later
    assert window.totals(30.0) == (1, 0, 0)
    window.add(39.0, True, False)
    assert window.totals(39.0) == (2, 1, 0)


def test_time_window_puts_a_late_outcome_in_the_newest_bucket() -> None:
    window = TimeWindow(10)
    window.add(5.0, False, False)
    window.add(2.0, True, False)  # the clock went back
    assert window.totals(5.0) == (2, 1, 0)
    assert window.totals(14.99) == (2, 1, 0)
    assert window.totals(15.0) == (0, 0, 0)


def test_a_time_window_breaker_judges_only_recent_calls() -> None:
    core = BreakerCore(
        BreakerConfig(
            consecutive_failures=None,
            failure_rate=0.5,
            window=10,
            window_type="time",
            minimum_calls=4,
        )
    )
    for now in (0, 1, 2):  # fewer than minimum_calls: not judged
        call(core, now, 1)
    for now in (11, 12, 12, 12):
        call(core, now, 0)
    # Buckets are half a second: at 12 the window is [2.5, 12.5), the failures are out.
    assert core.window_totals(12) == (4, 0, 0)
    call(core, 12, 1)
    call(core, 12, 1)
    call(core, 12.5, 1)
    assert state(core) == "closed"  # 3 of 7
    call(core, 12.5, 1)
    assert state(core) == "open"  # 4 of 8


def test_every_counted_outcome_with_a_rate_threshold_says_it_counted() -> None:
    core = rate_core(failure_rate=0.5)
    assert call(core, 0, 0) is True
    assert call(core, 0, 1) is True
    assert core.record(0, core.admit(0), IGNORED, 0) is True
    assert core.window_totals(0) == (2, 1, 0)


def test_half_open_with_a_success_and_a_trial_out_has_no_permit_left() -> None:
    core = open_by_one_failure(half_open_permits=2, half_open_max_wait=4)
    first, _second = core.admit(10), core.admit(10)
    core.record(11, first, SUCCESS, 0)
    assert core.admit(11) == REJECTED
    assert core.retry_after(11) == 3.0


def test_time_window_buckets_keep_their_own_failure_counts() -> None:
    window = TimeWindow(20)
    window.add(0.1, True, True)
    window.add(0.2, True, True)
    window.add(0.3, False, False)  # three calls in the bucket [0, 1)
    window.add(5.0, True, True)
    assert window.totals(5.0) == (4, 3, 3)
    assert window.totals(20.0) == (1, 1, 1)  # the whole first bucket leaves


def test_local_breaker_records_durations_for_the_slow_call_rate() -> None:
    clock = FakeClock(0)
    backend = LocalBreaker(
        BreakerConfig(
            consecutive_failures=None,
            slow_call_rate=0.5,
            slow_call_duration=1.0,
            minimum_calls=2,
        ),
        clock,
        lambda moved: None,
    )
    assert backend.record(backend.admit(), SUCCESS, 0.5) is True
    assert backend.record(backend.admit(), SUCCESS, 1.5) is True
    assert backend.current_state() is State.OPEN


async def test_local_breaker_records_async_durations_for_the_slow_call_rate() -> None:
    backend = LocalBreaker(
        BreakerConfig(consecutive_failures=None, slow_call_rate=1.0, slow_call_duration=1.0),
        FakeClock(0),
        lambda moved: None,
    )
    ticket = await backend.admit_async()
    assert await backend.record_async(ticket, SUCCESS, 2.0) is True
    assert backend.core.window_totals(0) == (1, 0, 1)
