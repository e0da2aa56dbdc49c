"""The batched breaker's and the leased limiter's sans-IO cores, with the time passed in.

The fleet side is played by hand-written verdicts here; tests/resilience/test_redis_batched.py
plays the same cores against the real script on a real redis-server.
"""

from __future__ import annotations

import pytest

from buttress.resilience._breaker_core import (
    FAILURE,
    IGNORED,
    REJECTED,
    SUCCESS,
    BreakerConfig,
    Reason,
    State,
)
from buttress.resilience._shared_core import TRIAL, LeaseCore, SharedBreakerCore, Verdict

CONFIG = BreakerConfig(consecutive_failures=3, reset_timeout=10, half_open_permits=2)


def connected(config: BreakerConfig = CONFIG) -> SharedBreakerCore:
    core = SharedBreakerCore(config, interval=0.5)
    core.report(0.0)
    core.apply(0.0, Verdict(State.CLOSED, 0, 0.0, 0, Reason.NONE))
    return core


def test_closed_outcomes_are_summed_into_one_report() -> None:
    core = connected()
    for outcome in (SUCCESS, FAILURE, SUCCESS, FAILURE, FAILURE):
        core.record(0.1, core.admit(0.1), outcome, 0.0)
    report = core.report(0.6)
    assert (report.calls, report.failures, report.trailing, report.succeeded) == (5, 3, 2, True)
    assert report.trip is None
    assert core.report(1.2).calls == 0  # reported once


def test_a_local_trip_opens_here_at_once_and_asks_for_an_early_exchange() -> None:
    core = connected()
    core.report(0.1)
    assert not core.due(0.15)
    for _ in range(3):
        core.record(0.2, core.admit(0.2), FAILURE, 0.0)
    assert core.state is State.OPEN
    assert core.admit(0.2) == REJECTED
    assert core.due(0.2)  # a fifth of the interval after the last exchange, not a whole one
    report = core.report(0.2)
    assert report.trip is Reason.CONSECUTIVE_FAILURES
    assert report.view is State.OPEN


def test_the_fleets_open_verdict_closes_the_door_here_too() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.OPEN, 1, 8.0, 0, Reason.FAILURE_RATE))
    assert core.state is State.OPEN
    assert core.transitions[-1].reason is Reason.FAILURE_RATE
    assert core.admit(1.0) == REJECTED
    assert core.retry_after(1.0) == pytest.approx(8.0)
    # After the fleet's open period a refused call asks for a permit in the next exchange.
    assert core.admit(9.5) == REJECTED
    assert core.report(9.5).want == CONFIG.half_open_permits


def test_only_granted_permits_pass_in_half_open_and_their_outcomes_go_at_once() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.HALF_OPEN, 2, 10.0, 1, Reason.RESET_TIMEOUT))
    ticket = core.admit(1.0)
    assert ticket & TRIAL
    assert core.admit(1.0) == REJECTED  # one permit granted: one trial
    assert core.report(1.0).want == 2  # the refused call asks for more
    core.record(1.1, ticket, SUCCESS, 0.0)
    assert core.due(1.2)
    report = core.report(1.2)
    assert (report.generation, report.trial_successes) == (2, 1)


def test_a_failed_trial_refuses_here_before_the_fleet_answers() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.HALF_OPEN, 2, 10.0, 1, Reason.RESET_TIMEOUT))
    core.record(1.1, core.admit(1.0), FAILURE, 0.0)
    assert core.state is State.OPEN
    assert core.report(1.2).trial_failures == 1


def test_a_trial_of_an_earlier_round_counts_for_nothing() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.HALF_OPEN, 2, 10.0, 1, Reason.RESET_TIMEOUT))
    ticket = core.admit(1.0)
    core.apply(12.0, Verdict(State.HALF_OPEN, 3, 10.0, 0, Reason.HALF_OPEN_MAX_WAIT))
    assert not core.record(12.1, ticket, SUCCESS, 0.0)
    assert core.report(12.2).trial_successes == 0


def test_ignored_and_unused_permits_go_back_to_the_fleet() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.HALF_OPEN, 2, 10.0, 2, Reason.RESET_TIMEOUT))
    core.record(1.1, core.admit(1.0), IGNORED, 0.0)
    assert core.report(1.5).returned == 2  # the ignored one, and the one never used


def test_the_fleet_closing_closes_a_replica_that_had_tripped_alone() -> None:
    core = connected()
    for _ in range(3):
        core.record(0.2, core.admit(0.2), FAILURE, 0.0)
    core.report(0.3)
    core.apply(5.0, Verdict(State.CLOSED, 4, 0.0, 0, Reason.HALF_OPEN_SUCCESS))
    assert core.state is State.CLOSED
    assert core.local.state is State.CLOSED
    assert core.admit(5.0) != REJECTED


def test_a_trip_after_the_report_survives_a_closed_verdict() -> None:
    core = connected()
    core.report(0.1)
    for _ in range(3):
        core.record(0.2, core.admit(0.2), FAILURE, 0.0)
    core.apply(0.3, Verdict(State.CLOSED, 0, 0.0, 0, Reason.NONE))  # sent before the trip
    assert core.state is State.OPEN
    assert core.report(0.4).trip is Reason.CONSECUTIVE_FAILURES


def test_alone_it_stays_open_and_decides_like_the_in_memory_breaker() -> None:
    core = connected()
    core.apply(1.0, Verdict(State.OPEN, 1, 8.0, 0, Reason.FAILURE_RATE))
    report = core.report(1.5)
    core.failed(report)
    assert not core.connected
    assert core.state is State.OPEN
    assert core.admit(2.0) == REJECTED
    # The local core's own reset timeout (10 s from the verdict) lets a trial through.
    assert core.admit(11.5) != REJECTED
    assert core.transitions[-1].new is State.HALF_OPEN


def test_a_trip_whose_exchange_failed_is_sent_again() -> None:
    core = connected()
    for _ in range(3):
        core.record(0.2, core.admit(0.2), FAILURE, 0.0)
    core.failed(core.report(0.2))
    assert core.report(0.8).trip is Reason.CONSECUTIVE_FAILURES


def test_steering_alone_forces_this_replica() -> None:
    core = connected()
    core.steer_alone(State.FORCED_OPEN)
    assert core.state is State.FORCED_OPEN
    assert core.admit(1.0) == REJECTED
    assert core.report(1.0).view is State.FORCED_OPEN


# -- the lease ---------------------------------------------------------------------------


def test_before_the_first_lease_the_replica_uses_its_own_bucket() -> None:
    lease = LeaseCore(rate=10, burst=10, interval=0.5, now=0.0)
    assert all(lease.take(0.0, 0.0) == 0.0 for _ in range(10))
    assert lease.take(0.0, 0.0) < 0


def test_a_lease_is_spent_without_asking_and_refused_past_it() -> None:
    lease = LeaseCore(rate=100, burst=100, interval=0.5, now=0.0)
    ask, returned = lease.ask(0.0)
    assert (ask, returned) == (50, 0)  # the first lease: one interval of the whole rate
    lease.leased(3, retry=0.01)
    assert [lease.take(0.1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = lease.take(0.1, 0.0)
    assert wait == pytest.approx(-0.4)  # the next exchange, an interval after the last
    assert lease.urgent
    assert not lease.due(0.3)  # at most one exchange per interval, spent or not
    assert lease.due(0.5)


def test_the_next_lease_follows_demand_and_never_exceeds_a_slice() -> None:
    lease = LeaseCore(rate=1000, burst=1000, interval=0.5, now=0.0)
    lease.ask(0.0)
    lease.leased(0, retry=0.001)
    for _ in range(40):
        lease.take(0.2, 0.0)
    ask, _ = lease.ask(0.5)
    assert ask == 80  # twice the last interval's demand
    for _ in range(10_000):
        lease.take(0.7, 0.0)
    assert lease.ask(1.0)[0] == 500  # capped at one interval of the whole rate


def test_an_idle_replica_gives_its_lease_back() -> None:
    lease = LeaseCore(rate=1000, burst=1000, interval=0.5, now=0.0)
    lease.ask(0.0)
    lease.leased(500, retry=0.001)
    assert lease.due(0.5)
    assert lease.ask(0.5) == (0, 499)
    assert lease.tokens == 1


def test_a_reservation_is_paid_from_the_next_lease() -> None:
    lease = LeaseCore(rate=10, burst=10, interval=0.5, now=0.0)
    lease.ask(0.0)
    lease.leased(0, retry=0.1)
    assert lease.take(0.0, max_wait=1.0) == pytest.approx(0.5)
    ask, _ = lease.ask(0.5)
    assert ask == 3  # twice one call of demand, plus the one reserved
    lease.leased(3, retry=0.1)
    assert lease.tokens == 2


def test_alone_after_a_failed_exchange_and_back_with_the_next_lease() -> None:
    lease = LeaseCore(rate=10, burst=2, interval=0.5, now=0.0)
    lease.ask(0.0)
    lease.leased(5, retry=0.1)
    lease.failed()
    assert lease.tokens == 0
    assert lease.take(1.0, 0.0) == 0.0  # the replica's own bucket decides
    lease.leased(1, retry=0.1)
    assert lease.connected
    assert lease.known


def test_a_trip_before_the_first_verdict_reaches_the_fleet() -> None:
    core = SharedBreakerCore(CONFIG, interval=0.5)
    for _ in range(3):
        core.record(0.1, core.admit(0.1), FAILURE, 0.0)
    assert core.state is State.OPEN
    assert core.report(0.2).trip is Reason.CONSECUTIVE_FAILURES


def test_a_trip_alone_that_closed_again_is_not_sent() -> None:
    core = connected()
    core.failed(core.report(0.1))
    for _ in range(3):
        core.record(0.2, core.admit(0.2), FAILURE, 0.0)
    trials = [core.admit(11.0), core.admit(11.0)]
    for ticket in trials:  # its own trials close it
        core.record(11.0, ticket, SUCCESS, 0.0)
    assert core.state is State.CLOSED
    assert core.report(11.5).trip is None
