"""Adaptive throttling: the SRE formula over a sliding window, clock and random injected."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

import buttress
from buttress import BulkheadFull, ConfigurationError, DeadlineExceeded, RateLimited, Throttled
from buttress.events import ThrottleRejected, ThrottleUpdated
from buttress.resilience._throttle import ThrottleWindow
from buttress.strategies import Throttle
from buttress.testing import FakeClock, capture_events


class Refusal(Exception):
    pass


def make(clock: FakeClock, draw: float = 0.999, **kwargs: Any) -> Throttle:
    options: dict[str, Any] = {"clock": clock, "random": lambda: draw, "name": "svc"}
    options.update(kwargs)
    return buttress.throttle(**options)


def refuse() -> None:
    raise Refusal


def test_the_window_applies_the_sre_formula() -> None:
    window = ThrottleWindow(k=2.0, window=10.0, buckets=10)
    for _ in range(8):
        window.record(0.0, accepted=False)
    for _ in range(2):
        window.record(0.0, accepted=True)
    # requests 10, accepts 2: (10 - 2 * 2) / 11
    assert window.probability(0.0) == pytest.approx(6 / 11)
    assert window.admit(0.0, draw=0.99) is None  # drew above the probability: sent
    assert window.admit(0.0, draw=0.1) == pytest.approx(6 / 11)
    assert window.counts(0.0) == (10, 2)  # only requests sent are counted


def test_old_slices_leave_the_window() -> None:
    window = ThrottleWindow(k=2.0, window=10.0, buckets=10)
    for _ in range(10):
        window.record(0.0, accepted=False)
    assert window.counts(9.9) == (10, 0)
    assert window.counts(10.0) == (0, 0)
    assert window.probability(10.0) == 0.0


def test_a_healthy_dependency_is_never_throttled() -> None:
    clock = FakeClock()
    policy = make(clock, draw=0.0)  # refused whenever the probability is above zero
    for _ in range(100):
        assert policy.call(lambda: "ok") == "ok"
    assert policy.probability() == 0.0
    assert policy.acceptance() == 1.0


def test_refusals_make_local_rejections_likely_and_they_are_throttled_errors() -> None:
    clock = FakeClock()
    policy = make(clock, draw=0.5)
    sent = 0

    def counted() -> None:
        nonlocal sent
        sent += 1
        raise Refusal

    outcomes = []
    with capture_events() as events:
        for _ in range(20):
            try:
                policy.call(counted)
            except Throttled as exc:
                outcomes.append(exc)
            except Refusal:
                pass
    assert outcomes, "a dependency refusing everything must be throttled"
    assert isinstance(outcomes[0], RateLimited)
    assert outcomes[0].name == "svc"
    assert outcomes[0].probability >= 0.5
    assert sent + len(outcomes) == 20
    assert sent >= 2  # a trickle still probes the dependency
    assert any(isinstance(e, ThrottleRejected) for e in events)
    updates = [e for e in events if isinstance(e, ThrottleUpdated)]
    assert updates[-1].accepts == 0
    assert updates[-1].acceptance == 0.0


def test_recovery_takes_at_most_one_window() -> None:
    clock = FakeClock()
    policy = make(clock, draw=0.5, window=10)
    for _ in range(50):
        with contextlib.suppress(Refusal, Throttled):
            policy.call(refuse)
    assert policy.probability() > 0.5
    clock.advance(10)
    assert policy.probability() == 0.0
    assert policy.call(lambda: "ok") == "ok"


def test_results_can_count_as_refusals() -> None:
    clock = FakeClock()
    policy = make(clock, on_result=lambda r: r == 429)
    policy.call(lambda: 429)
    policy.call(lambda: 200)
    assert policy.acceptance() == 0.5


def test_buttress_refusals_and_the_callers_deadline_are_not_counted() -> None:
    clock = FakeClock()
    policy = make(clock)

    def full() -> None:
        raise BulkheadFull("full", name="b")

    def late() -> None:
        raise DeadlineExceeded("late", name="t", timeout=0.0)

    for fn in (full, late):
        with pytest.raises((BulkheadFull, DeadlineExceeded)):
            policy.call(fn)
    assert policy._window.counts(clock()) == (0, 0)


def test_on_limits_what_counts_as_a_refusal() -> None:
    clock = FakeClock()
    policy = make(clock, on=Refusal)
    with pytest.raises(KeyError):
        policy.call(_raise(KeyError()))
    with pytest.raises(Refusal):
        policy.call(refuse)
    assert policy.acceptance() == 0.5


def test_copies_have_their_own_window() -> None:
    clock = FakeClock()
    policy = make(clock)
    with pytest.raises(Refusal):
        policy.call(refuse)
    copy = policy.copy(name="other")
    assert copy.name == "other"
    assert copy.acceptance() == 1.0
    assert policy.acceptance() == 0.0


async def test_async_calls_are_throttled_alike() -> None:
    clock = FakeClock()
    policy = make(clock, draw=0.5)

    async def refused() -> None:
        raise Refusal

    throttled = 0
    for _ in range(20):
        try:
            await policy.call(refused)
        except Throttled:
            throttled += 1
        except Refusal:
            pass
    assert throttled > 0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"k": 0.5}, "k"), ({"window": 0}, "window"), ({"buckets": 0}, "buckets"), ({"on": 3}, "on")],
)
def test_bad_values_name_themselves(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        buttress.throttle(**kwargs)


def _raise(error: Exception) -> Any:
    def call() -> None:
        raise error

    return call
