"""One set of breaker and rate-limiter scenarios, played against both backends.

Every test runs twice: on the in-process core and on a real redis-server through the Lua
scripts (with ``server_time=False``, so the same fake clock drives both). A rule changed
on one side only fails here. Most scenarios are ported from the peers' own test suites
and name their source; the expectations are ours where our semantics differ (a
half-open breaker here closes only when every trial succeeds).

Nothing sleeps: the clock is a FakeClock, slow calls advance it, waits are injected.
"""

# Each ported case names its source method in full, however long.
# ruff: noqa: E501
from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress import CircuitBreaker, CircuitOpen, RateLimited, RateLimiter, RedisStore
from buttress.events import BreakerTransition
from buttress.testing import FakeClock

from .._services import RedisCluster, RedisServer
from ._clock import state

# A generous socket timeout: a loaded machine must not push a live Redis into the local
# fallback, which would test the fallback instead of the scripts.
LOADED = 5.0
_names = itertools.count()


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


@pytest.fixture(scope="module")
def shared_redis(redis_binary: str) -> Iterator[RedisServer]:
    with RedisServer(redis_binary) as server:
        yield server


class Harness:
    """Builds strategies on one backend, all driven by one fake clock."""

    def __init__(self, backend: str, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.clock = FakeClock()
        self.transitions: list[tuple[str, str, str]] = []
        self.store: RedisStore | None = None
        self.client: Any = None
        if backend == "redis":
            server: RedisServer = request.getfixturevalue("shared_redis")
            self.store = RedisStore(
                server.url,
                service=f"parity{next(_names)}",
                socket_timeout=LOADED,
                clock=self.clock,
                server_time=False,
            )
        elif backend == "cluster":
            # The same scripts on a 3-master Redis Cluster, through a client the user built.
            import redis.cluster

            cluster: RedisCluster = request.getfixturevalue("redis_cluster")
            self.client = redis.cluster.RedisCluster(
                startup_nodes=[
                    redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                    for h, p in cluster.startup_nodes
                ],
                socket_timeout=LOADED,
            )
            self.store = RedisStore(
                client=self.client,
                service=f"parity{next(_names)}",
                clock=self.clock,
                server_time=False,
            )

    def breaker(self, **options: Any) -> CircuitBreaker:
        def moved(event: BreakerTransition) -> None:
            self.transitions.append((event.old, event.new, event.reason))

        options.setdefault("on_transition", moved)
        return CircuitBreaker(
            f"b{next(_names)}",
            clock=self.clock,
            store=self.store,
            ignore=Ignored,
            **options,
        )

    def limiter(self, **options: Any) -> RateLimiter:
        options.setdefault("sleep", self.clock.sleep)
        return RateLimiter(f"r{next(_names)}", clock=self.clock, store=self.store, **options)

    # -- calls --------------------------------------------------------------------------

    def ok(self, breaker: CircuitBreaker, times: int = 1, seconds: float = 0.0) -> None:
        for _ in range(times):
            breaker.call(self.clock.advance, seconds)

    def fail(self, breaker: CircuitBreaker, times: int = 1, seconds: float = 0.0) -> None:
        def failing() -> None:
            self.clock.advance(seconds)
            raise Boom

        for _ in range(times):
            with pytest.raises(Boom):
                breaker.call(failing)

    def ignored(self, breaker: CircuitBreaker) -> None:
        def ignoring() -> None:
            raise Ignored

        with pytest.raises(Ignored):
            breaker.call(ignoring)

    def refused(self, breaker: CircuitBreaker) -> CircuitOpen:
        with pytest.raises(CircuitOpen) as info:
            breaker.call(lambda: None)
        return info.value

    def admitted(self, breaker: CircuitBreaker) -> bool:
        try:
            breaker.call(lambda: None)
        except CircuitOpen:
            return False
        return True

    @staticmethod
    def hold(breaker: CircuitBreaker) -> Callable[[BaseException | None], None]:
        """Take a permit now; the returned function records the call's end."""
        context = contextvars.copy_context()
        context.run(breaker.__enter__)

        def end(exc: BaseException | None = None) -> None:
            context.run(breaker.__exit__, type(exc) if exc else None, exc, None)

        return end

    @staticmethod
    def lost(breaker: CircuitBreaker) -> None:
        """Take a permit whose outcome never comes back (a hung or lost call)."""
        contextvars.copy_context().run(breaker.__enter__)

    def opened(self, **options: Any) -> CircuitBreaker:
        options.setdefault("consecutive_failures", 1)
        options.setdefault("reset_timeout", 5)
        breaker = self.breaker(**options)
        self.fail(breaker)
        assert state(breaker) == "open"
        return breaker

    def half_open(self, **options: Any) -> CircuitBreaker:
        breaker = self.opened(**options)
        self.clock.advance(breaker._config.reset_timeout)
        return breaker


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(request.param, request)
    yield harness
    if harness.store is not None:
        harness.store.close()
    if harness.client is not None:
        harness.client.close()


def r4j(**options: Any) -> dict[str, Any]:
    """resilience4j CircuitBreakerStateMachineTest's set-up, in our options (count window)."""
    config: dict[str, Any] = {
        "failure_rate": 0.5,
        "half_open_permits": 4,
        "slow_call_duration": 4,
        "slow_call_rate": 0.5,
        "window": 5,
        "minimum_calls": 5,
        "reset_timeout": 5,
    }
    config.update(options)
    return config


# -- resilience4j CircuitBreakerStateMachineTest ---------------------------------------------


def test_refuses_while_open(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldThrowCallNotPermittedExceptionWhenStateIsOpen
    breaker = h.opened()
    assert h.refused(breaker).retry_after == pytest.approx(5)


def test_refuses_while_forced_open(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldThrowCallNotPermittedExceptionWhenStateIsForcedOpen
    breaker = h.breaker()
    breaker.force_open()
    assert h.refused(breaker).retry_after is None


def test_a_released_trial_permit_can_be_taken_again(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldIncreaseCounterOnReleasePermission
    breaker = h.half_open(**r4j(consecutive_failures=1))
    ends = [h.hold(breaker) for _ in range(4)]
    assert not h.admitted(breaker)
    ends[0](Ignored())  # released without a verdict
    end = h.hold(breaker)
    assert state(breaker) == "half_open"
    for finish in (*ends[1:], end):
        finish(None)
    assert state(breaker) == "closed"


def test_only_the_permitted_trials_pass_in_half_open(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldOnlyPermitFourCallsInHalfOpenState
    # resilience4j CircuitBreakerStateMachineTest.shouldThrowCallNotPermittedExceptionWhenNotFurtherTestCallsArePermitted
    breaker = h.half_open(**r4j(consecutive_failures=1))
    ends = [h.hold(breaker) for _ in range(4)]
    assert state(breaker) == "half_open"
    assert not h.admitted(breaker)
    assert not h.admitted(breaker)
    ends[0](Boom())  # one trial failed: open again
    assert state(breaker) == "open"


def test_opens_when_the_failure_rate_reaches_the_threshold(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldOpenAfterFailureRateThresholdExceeded
    breaker = h.breaker(**r4j())
    h.fail(breaker, 3)
    h.ok(breaker)
    assert state(breaker) == "closed"  # 4 calls: below minimum_calls
    h.ok(breaker)
    assert state(breaker) == "open"  # 3 of 5: 60% >= 50%
    assert h.transitions == [("closed", "open", "failure_rate")]


def test_opens_when_the_slow_call_rate_reaches_the_threshold(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldOpenAfterSlowCallRateThresholdExceeded
    breaker = h.breaker(**r4j(failure_rate=None))
    h.ok(breaker, seconds=5)
    h.ok(breaker, seconds=5)
    h.ok(breaker, seconds=0.1)
    h.ok(breaker, seconds=0.1)
    assert state(breaker) == "closed"
    h.ok(breaker, seconds=5)
    assert state(breaker) == "open"
    assert h.transitions == [("closed", "open", "slow_call_rate")]


def test_turns_half_open_after_the_wait_duration(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldTransitionToHalfOpenAfterWaitDuration
    breaker = h.opened()
    h.clock.advance(3)
    assert not h.admitted(breaker)
    assert state(breaker) == "open"
    h.clock.advance(3)
    end = h.hold(breaker)
    assert state(breaker) == "half_open"
    end(None)


def test_the_wait_grows_with_each_failed_trial(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldTransitionToHalfOpenAfterWaitInterval
    breaker = h.opened(reset_backoff=1.5)
    h.clock.advance(5)
    h.fail(breaker)  # the trial fails: 5 x 1.5 = 7.5 s
    h.clock.advance(6)
    assert not h.admitted(breaker)
    h.clock.advance(1.5)
    assert h.admitted(breaker)
    assert state(breaker) == "closed"


def test_a_failed_trial_opens_again(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldTransitionBackToOpenStateWhenFailureRateIsAboveThreshold
    breaker = h.half_open(**r4j(consecutive_failures=1))
    h.ok(breaker)
    h.fail(breaker)
    assert state(breaker) == "open"
    assert h.transitions[-1] == ("half_open", "open", "half_open_failure")


def test_a_slow_trial_opens_again_when_slow_calls_count(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldTransitionBackToOpenStateWhenSlowCallRateIsAboveThreshold
    breaker = h.half_open(**r4j(consecutive_failures=1))
    h.ok(breaker, seconds=5)
    assert state(breaker) == "open"


def test_all_trials_succeeding_closes_with_a_fresh_window(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldTransitionBackToClosedStateWhenFailureIsBelowThreshold
    breaker = h.breaker(**r4j())
    h.fail(breaker, 5)
    assert state(breaker) == "open"
    h.clock.advance(5)
    h.ok(breaker, 4)
    assert state(breaker) == "closed"
    h.fail(breaker, 2)  # counted in a fresh window: 2 calls, below minimum_calls
    assert state(breaker) == "closed"


def test_reset_clears_the_window(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldResetMetrics
    # resilience4j CircuitBreakerStateMachineTest.shouldResetClosedState
    breaker = h.breaker(**r4j())
    h.fail(breaker, 4)
    breaker.reset()
    h.fail(breaker, 1)
    h.ok(breaker, 3)
    assert state(breaker) == "closed"  # 1 of 4 since the reset


def test_reset_closes_an_open_breaker(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldResetToClosedState
    breaker = h.opened()
    breaker.reset()
    assert state(breaker) == "closed"
    assert h.admitted(breaker)
    assert h.transitions[-1] == ("open", "closed", "manual")


def test_forced_open_outlasts_the_wait_duration(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldForceOpenCircuitBreaker
    breaker = h.breaker()
    breaker.force_open()
    h.clock.advance(60)
    assert not h.admitted(breaker)
    assert state(breaker) == "forced_open"


def test_forced_closed_admits_and_counts_nothing(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldForceCloseCircuitBreaker
    # resilience4j CircuitBreakerStateMachineTest.shouldDisableCircuitBreaker
    breaker = h.breaker(consecutive_failures=1)
    breaker.force_closed()
    h.fail(breaker, 5)
    assert state(breaker) == "forced_closed"
    breaker.reset()
    h.ok(breaker)
    assert state(breaker) == "closed"


def test_an_ignored_trial_gives_its_permit_back(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldReleasePermissionWhenExceptionIgnored
    breaker = h.half_open(**r4j(consecutive_failures=1))
    h.ok(breaker, 3)
    h.ignored(breaker)
    assert state(breaker) == "half_open"
    h.ok(breaker)
    assert state(breaker) == "closed"


def test_ignored_trials_then_successes_close(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.shouldIgnoreExceptionsAndThenTransitionToClosed
    breaker = h.half_open(**r4j(consecutive_failures=1))
    for _ in range(4):
        h.ignored(breaker)
    assert state(breaker) == "half_open"
    h.ok(breaker, 3)
    assert state(breaker) == "half_open"
    h.ok(breaker)
    assert state(breaker) == "closed"


def test_forcing_the_state_it_is_in_announces_nothing(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.allCircuitBreakerStatesAllowTransitionToItsOwnState
    breaker = h.breaker()
    breaker.force_open()
    breaker.force_open()
    assert h.transitions == [("closed", "forced_open", "manual")]


def test_a_half_open_round_without_verdict_is_given_up_after_the_max_wait(h: Harness) -> None:
    # resilience4j CircuitBreakerStateMachineTest.circuitBreakerTransitionsToOpenAfterWaitDurationInHalfOpenState
    # (resilience4j reopens; we let a new round of trials through, as Polly re-permits one
    # trial per break duration)
    breaker = h.half_open(half_open_max_wait=2)
    h.lost(breaker)
    h.clock.advance(1.5)
    assert h.refused(breaker).retry_after == pytest.approx(0.5)
    h.clock.advance(0.5)
    assert h.admitted(breaker)
    assert state(breaker) == "closed"
    assert h.transitions[-2:] == [
        ("half_open", "half_open", "half_open_max_wait"),  # the hung round, given up on
        ("half_open", "closed", "half_open_success"),
    ]


# -- Polly v8 CircuitStateControllerTests and AdvancedCircuitBehaviorTests ---------------------


def test_half_open_blocks_other_calls_for_one_break_duration(h: Harness) -> None:
    # Polly CircuitStateControllerTests.HalfOpen_EnsureBreakDuration
    breaker = h.half_open()
    end = h.hold(breaker)
    assert h.refused(breaker).retry_after == pytest.approx(5)
    end(None)


@pytest.mark.parametrize("success", [True, False])
def test_the_trial_decides_the_next_state(h: Harness, success: bool) -> None:
    # Polly CircuitStateControllerTests.HalfOpen_EnsureCorrectStateTransitionAfterExecution
    breaker = h.half_open()
    if success:
        h.ok(breaker)
    else:
        h.fail(breaker)
    assert state(breaker) == ("closed" if success else "open")


def test_a_second_call_during_the_trial_is_refused(h: Harness) -> None:
    # Polly CircuitStateControllerTests.OnActionPreExecute_HalfOpen
    breaker = h.half_open()
    end = h.hold(breaker)
    assert not h.admitted(breaker)
    assert state(breaker) == "half_open"
    end(None)
    assert ("open", "half_open", "reset_timeout") in h.transitions


def test_flow_closed_half_open_closed(h: Harness) -> None:
    # Polly CircuitStateControllerTests.Flow_Closed_HalfOpen_Closed
    breaker = h.half_open()
    h.ok(breaker)
    assert [t[1] for t in h.transitions] == ["open", "half_open", "closed"]


def test_flow_closed_half_open_open_half_open_closed(h: Harness) -> None:
    # Polly CircuitStateControllerTests.Flow_Closed_HalfOpen_Open_HalfOpen_Closed
    breaker = h.half_open()
    h.fail(breaker)
    h.clock.advance(5)
    h.ok(breaker)
    assert [t[1] for t in h.transitions] == ["open", "half_open", "open", "half_open", "closed"]


def test_the_refusal_says_when_the_break_ends(h: Harness) -> None:
    # Polly CircuitStateControllerTests.OnActionPreExecute_CircuitOpenedByException
    breaker = h.opened(reset_timeout=30)
    h.clock.advance(10)
    refused = h.refused(breaker)
    assert refused.retry_after == pytest.approx(20)
    assert refused.name == breaker.name


def test_break_durations_grow_and_are_capped(h: Harness) -> None:
    # Polly CircuitStateControllerTests.BreakDurationGenerator_EnsureHalfOpenAttempts
    breaker = h.opened(reset_backoff=2, max_reset_timeout=15)
    for expected in (10, 15, 15):
        h.clock.advance(breaker.time_until_half_open or 0)
        h.fail(breaker)
        assert breaker.time_until_half_open == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rate", "minimum", "calls", "failures", "opens"),
    [
        (0.5, 100, 100, 50, True),
        (0.5, 100, 99, 50, False),  # below the minimum throughput
        (0.5, 100, 100, 49, False),
        (0.1, 10, 10, 1, True),
        (1.0, 4, 4, 4, True),
        (1.0, 4, 4, 3, False),
    ],
)
def test_the_opening_rule_at_its_boundaries(
    h: Harness, rate: float, minimum: int, calls: int, failures: int, opens: bool
) -> None:
    # Polly AdvancedCircuitBehaviorTests.OnActionFailure_WhenClosed_EnsureCorrectBehavior
    breaker = h.breaker(failure_rate=rate, minimum_calls=minimum, window=100)
    h.ok(breaker, calls - failures)
    h.fail(breaker, failures)
    assert state(breaker) == ("open" if opens else "closed")


def test_a_success_while_closed_keeps_it_closed(h: Harness) -> None:
    # Polly CircuitStateControllerTests.OnActionSuccess_EnsureCorrectBehavior
    breaker = h.breaker(consecutive_failures=2)
    h.fail(breaker)
    h.ok(breaker)
    h.fail(breaker)
    assert state(breaker) == "closed"  # the success reset the count


def test_failures_below_the_threshold_keep_it_closed(h: Harness) -> None:
    # Polly CircuitStateControllerTests.OnActionFailureAsync_EnsureCorrectBehavior
    breaker = h.breaker(consecutive_failures=3)
    h.fail(breaker, 2)
    assert state(breaker) == "closed"
    h.fail(breaker)
    assert state(breaker) == "open"


# -- sliding windows: resilience4j FixedSizeSlidingWindowMetricsTest, SlidingTimeWindowMetricsTest,
#    Polly RollingHealthMetricsTests --------------------------------------------------------


def test_a_count_window_forgets_its_oldest_call(h: Harness) -> None:
    # resilience4j FixedSizeSlidingWindowMetricsTest.testSlidingWindowMetrics
    # resilience4j FixedSizeSlidingWindowMetricsTest.testMoveHeadIndexByOne
    breaker = h.breaker(failure_rate=0.6, window=5, minimum_calls=5)
    h.fail(breaker, 2)
    h.ok(breaker, 3)
    assert state(breaker) == "closed"  # 2 of 5
    h.fail(breaker)  # the oldest failure drops out: still 2 of 5
    assert state(breaker) == "closed"
    h.fail(breaker)  # and the other one: still 2 of 5
    assert state(breaker) == "closed"
    h.fail(breaker)  # 3 of 5 = 60%
    assert state(breaker) == "open"


def test_slow_calls_in_a_count_window(h: Harness) -> None:
    # resilience4j FixedSizeSlidingWindowMetricsTest.testSlidingWindowMetricsWithSlowCalls
    # resilience4j FixedSizeSlidingWindowMetricsTest.testSlowCallsPercentage
    breaker = h.breaker(slow_call_rate=0.5, slow_call_duration=1, window=4, minimum_calls=4)
    h.ok(breaker, 2, seconds=0.5)
    h.fail(breaker, 1, seconds=2)  # a slow failure counts as slow too
    assert state(breaker) == "closed"
    h.ok(breaker, 1, seconds=2)
    assert state(breaker) == "open"  # 2 of 4 slow


def test_a_time_window_forgets_calls_older_than_the_window(h: Harness) -> None:
    # resilience4j SlidingTimeWindowMetricsTest.testSlidingTimeWindowMetrics
    # Polly RollingHealthMetricsTests.GetHealthInfo_EnsureWindowRespected
    breaker = h.breaker(failure_rate=0.5, window=10, window_type="time", minimum_calls=4)
    h.fail(breaker, 3)
    h.clock.advance(11)
    h.ok(breaker, 3)
    h.fail(breaker)
    assert state(breaker) == "closed"  # the first three failures are out of reach: 1 of 4
    h.fail(breaker)
    assert state(breaker) == "closed"  # 2 of 5
    h.fail(breaker)
    assert state(breaker) == "open"  # 3 of 6


def test_a_time_window_is_empty_after_a_whole_window_of_silence(h: Harness) -> None:
    # resilience4j SlidingTimeWindowMetricsTest.shouldClearSlidingTimeWindowMetrics
    # Polly RollingHealthMetricsTests.GetHealthInfo_SamplingDurationRespected
    breaker = h.breaker(failure_rate=0.5, window=4, window_type="time", minimum_calls=3)
    h.fail(breaker, 2)
    h.clock.advance(4)
    h.fail(breaker)
    assert state(breaker) == "closed"  # one call in the window
    h.ok(breaker)
    h.fail(breaker)
    assert state(breaker) == "open"  # 2 of 3


def test_a_time_window_moves_bucket_by_bucket(h: Harness) -> None:
    # resilience4j SlidingTimeWindowMetricsTest.testMoveHeadIndexByOne
    breaker = h.breaker(failure_rate=0.5, window=2, window_type="time", minimum_calls=4)
    h.fail(breaker)  # in the first of 20 buckets of 0.1 s
    h.clock.advance(1.95)
    h.ok(breaker, 2)  # in the last bucket: 1 of 3
    h.clock.advance(0.1)  # one bucket on: the failure's bucket falls out
    h.fail(breaker)
    assert state(breaker) == "closed"  # 1 of 3 (it would be 2 of 4 had it stayed)
    h.fail(breaker)
    assert state(breaker) == "open"  # 2 of 4


# -- the edge cases behind the integer rule and the half-open max wait, on both backends ------


@pytest.mark.parametrize(
    ("failures", "calls", "rate"), [(55, 100, 0.55), (7, 25, 0.28), (7, 50, 0.14), (7, 100, 0.07)]
)
def test_the_exact_boundary_opens_on_both_backends(
    h: Harness, failures: int, calls: int, rate: float
) -> None:
    breaker = h.breaker(failure_rate=rate, window=calls, minimum_calls=calls)
    h.ok(breaker, calls - failures)
    h.fail(breaker, failures - 1)
    assert state(breaker) == "closed"
    h.fail(breaker)
    assert state(breaker) == "open"


def test_a_refusal_in_half_open_never_says_zero(h: Harness) -> None:
    breaker = h.half_open()
    h.lost(breaker)
    refused = h.refused(breaker)
    assert refused.retry_after is not None
    assert refused.retry_after > 0


# -- rate limiter: resilience4j AtomicRateLimiterTest, Polly TokenBucketRateLimiterTestsBase ----


def takes(limiter: RateLimiter, attempts: int) -> int:
    granted = 0
    for _ in range(attempts):
        try:
            limiter.acquire()
            granted += 1
        except RateLimited:
            pass
    return granted


def test_the_burst_is_available_at_once(h: Harness) -> None:
    # resilience4j AtomicRateLimiterTest.permissionsInFirstCycle
    # Polly TokenBucketRateLimiterTestsBase.Given_bucket_capacity_N_and_time_not_advanced_ratelimiter_permits_executions_up_to_bucket_capacity
    limiter = h.limiter(rate=1, burst=5)
    assert takes(limiter, 8) == 5


def test_the_refusal_says_when_the_next_token_comes(h: Harness) -> None:
    # Polly TokenBucketRateLimiterTestsBase.Given_bucket_capacity_one_and_time_not_advanced_ratelimiter_specifies_correct_wait_until_next_execution
    limiter = h.limiter(rate=1, per=4, burst=1)
    limiter.acquire()
    h.clock.advance(1)
    with pytest.raises(RateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(3)


def test_one_more_call_per_interval(h: Harness) -> None:
    # Polly TokenBucketRateLimiterTestsBase.Given_any_bucket_capacity_ratelimiter_permits_another_execution_per_interval
    limiter = h.limiter(rate=2, burst=3)
    assert takes(limiter, 3) == 3
    for _ in range(4):
        h.clock.advance(0.5)
        assert takes(limiter, 2) == 1


def test_a_full_burst_after_the_exact_refill_time(h: Harness) -> None:
    # Polly TokenBucketRateLimiterTestsBase.Given_any_bucket_capacity_rate_limiter_permits_full_bucket_burst_after_exact_elapsed_time
    limiter = h.limiter(rate=10, burst=5)
    assert takes(limiter, 5) == 5
    h.clock.advance(0.5)
    assert takes(limiter, 6) == 5


def test_half_a_burst_after_half_the_refill_time(h: Harness) -> None:
    # Polly TokenBucketRateLimiterTestsBase.Given_any_bucket_capacity_rate_limiter_permits_half_full_bucket_burst_after_half_required_refill_time_elapsed
    limiter = h.limiter(rate=10, burst=4)
    assert takes(limiter, 4) == 4
    h.clock.advance(0.2)
    assert takes(limiter, 4) == 2


def test_never_more_than_a_burst_however_long_it_was_idle(h: Harness) -> None:
    # Polly TokenBucketRateLimiterTestsBase.Given_any_bucket_capacity_rate_limiter_permits_only_full_bucket_burst_even_if_multiple_required_refill_time_elapsed
    # resilience4j AtomicRateLimiterTest.reserveFewThenSkipCyclesBeforeRefresh
    limiter = h.limiter(rate=10, burst=3)
    assert takes(limiter, 3) == 3
    h.clock.advance(60)
    assert takes(limiter, 10) == 3


def test_a_caller_may_wait_for_a_reserved_token(h: Harness) -> None:
    # resilience4j AtomicRateLimiterTest.reserveAndRefresh
    limiter = h.limiter(rate=1, burst=1, max_wait=2)
    limiter.acquire()
    limiter.acquire()  # reserves the next token, due in 1 s
    limiter.acquire()  # and the one after, due 1 s later
    assert h.clock.sleeps == pytest.approx([1.0, 1.0])


def test_a_wait_longer_than_max_wait_is_refused_without_waiting(h: Harness) -> None:
    # resilience4j AtomicRateLimiterTest.rejectedByTimeoutNonBlocking
    limiter = h.limiter(rate=1, per=10, burst=1, max_wait=5)
    limiter.acquire()
    with pytest.raises(RateLimited):
        limiter.acquire()
    assert h.clock.sleeps == []


def test_an_interrupted_waiter_gives_its_token_back(h: Harness) -> None:
    # resilience4j AtomicRateLimiterTest.waitingThreadIsInterrupted
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter = h.limiter(rate=1, burst=1, max_wait=10, sleep=interrupted)
    limiter.acquire()
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()
    limiter.max_wait = 0
    with pytest.raises(RateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(1.0)


async def test_a_cancelled_waiter_gives_its_token_back_on_both_backends(h: Harness) -> None:
    parked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        parked.set()
        await asyncio.Event().wait()

    limiter = h.limiter(rate=1, burst=1, max_wait=10, sleep=sleep)
    await limiter.acquire_async()
    waiter = asyncio.create_task(limiter.acquire_async())
    await parked.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.max_wait = 0
    with pytest.raises(RateLimited) as info:
        await limiter.acquire_async()
    assert info.value.retry_after == pytest.approx(1.0)


# -- a caller cancelled while its script call is on the wire (Redis only) ---------------------


class SlowWire:
    """Wraps a store's async script calls, holding ``scripts`` back until the gate opens:
    the reply (the script has run), or with ``before`` the request (it has not yet)."""

    def __init__(self, store: RedisStore, scripts: tuple[str, ...], before: bool = False) -> None:
        self._run = store.eval_script_async
        self.scripts = scripts
        self.before = before
        self.parked = asyncio.Event()
        self.gate = asyncio.Event()

    async def _hold(self, script: str) -> None:
        if script in self.scripts and not self.gate.is_set():
            self.parked.set()
            await self.gate.wait()

    async def __call__(self, script: str, keys: Any, args: Any) -> Any:
        if self.before:
            await self._hold(script)
        reply = await self._run(script, keys, args)
        if not self.before:
            await self._hold(script)
        return reply


async def settle() -> None:
    """Wait (bounded) until every other task, undo tasks included, has finished."""
    for _ in range(50):
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not others:
            return
        await asyncio.gather(*others, return_exceptions=True)
    raise AssertionError("tasks still running")


async def cancel_when_parked(wire: SlowWire, call: Any) -> None:
    task = asyncio.create_task(call)
    await wire.parked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wire.gate.set()
    await settle()


@pytest.mark.redis
async def test_a_token_taken_for_a_cancelled_caller_goes_back(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness("redis", request)
    assert h.store is not None
    limiter = h.limiter(rate=1, burst=1)
    wire = SlowWire(h.store, ("take",))
    monkeypatch.setattr(h.store, "eval_script_async", wire)
    await cancel_when_parked(wire, limiter.acquire_async())
    await limiter.acquire_async()  # the token came back: no time has passed
    h.store.close()


@pytest.mark.redis
async def test_a_trial_permit_taken_for_a_cancelled_caller_goes_back(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness("redis", request)
    assert h.store is not None
    breaker = h.half_open()
    wire = SlowWire(h.store, ("admit",))
    monkeypatch.setattr(h.store, "eval_script_async", wire)

    async def trial() -> str:
        return "ok"

    await cancel_when_parked(wire, breaker.call(trial))
    assert await breaker.call(trial) == "ok"  # the permit came back, not after a max wait
    assert state(breaker) == "closed"
    h.store.close()


@pytest.mark.redis
async def test_an_outcome_recorded_for_a_cancelled_caller_still_reaches_redis(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness("redis", request)
    assert h.store is not None
    breaker = h.half_open()
    wire = SlowWire(h.store, ("record",), before=True)
    monkeypatch.setattr(h.store, "eval_script_async", wire)

    async def trial() -> str:
        return "ok"

    await cancel_when_parked(wire, breaker.call(trial))
    assert state(breaker) == "closed"  # the trial's success was recorded all the same
    h.store.close()
