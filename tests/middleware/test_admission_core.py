"""The sans-IO concurrency limit, driven by a fake clock: no sleeps, no server."""

from __future__ import annotations

import pytest

from buttress import ConfigurationError
from buttress.middleware._admission import ConcurrencyLimit
from buttress.testing import FakeClock


def _run_window(
    limit: ConcurrencyLimit, clock: FakeClock, *, concurrency: int, latency: float
) -> None:
    """Batches of ``concurrency`` requests, each taking ``latency``, for one whole window."""
    start = clock()
    while clock() - start <= limit.window:
        permits = [p for p in (limit.acquire("critical") for _ in range(concurrency)) if p]
        clock.advance(latency)
        for permit in permits:
            limit.release(permit)


def test_a_fixed_limit_admits_that_many_and_sheds_the_rest() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="fixed", initial_limit=3, max_limit=3, clock=clock)
    permits = [limit.acquire("critical") for _ in range(3)]
    assert all(p is not None for p in permits)
    assert limit.acquire("critical") is None
    assert (limit.in_flight, limit.admitted, limit.shed) == (3, 3, 1)


def test_every_permit_comes_back_once_even_when_released_twice() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="fixed", initial_limit=2, max_limit=2, clock=clock)
    permit = limit.acquire()
    assert permit is not None
    limit.release(permit)
    limit.release(permit)  # a second exit path: nothing more is given back
    assert limit.in_flight == 0
    assert limit.acquire() is not None
    assert limit.acquire() is not None


def test_criticality_shares_the_limit_sheddable_first_critical_last() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="fixed", initial_limit=20, max_limit=20, clock=clock)
    held = [limit.acquire("critical") for _ in range(15)]
    assert all(held)
    assert limit.acquire("sheddable") is None  # 75% of 20 is taken
    assert limit.acquire("default") is not None  # default may go to 90%
    for _ in range(2):
        assert limit.acquire("default") is not None
    assert limit.acquire("default") is None  # 18 in flight: 90%
    assert limit.acquire("critical") is not None
    assert limit.acquire("critical") is not None
    assert limit.acquire("critical") is None  # 20: the whole limit


def test_one_request_is_always_let_in_so_the_limit_can_learn() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="fixed", initial_limit=1, max_limit=1, clock=clock)
    assert limit.acquire("sheddable") is not None  # 0.75 of 1 would otherwise admit none


def test_the_gradient_limit_shrinks_when_latency_rises_and_grows_back() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="gradient", initial_limit=40, clock=clock, window=0.1)
    _run_window(limit, clock, concurrency=40, latency=0.010)  # the no-load latency
    assert limit.noload_latency == pytest.approx(0.010)
    start = limit.limit
    for _ in range(30):  # queueing: latency three times the no-load latency
        _run_window(limit, clock, concurrency=limit.limit, latency=0.030)
    shrunk = limit.limit
    assert shrunk < start / 2
    for _ in range(30):  # the queue is gone
        _run_window(limit, clock, concurrency=limit.limit, latency=0.010)
    assert limit.limit > shrunk * 2


def test_a_latency_within_tolerance_does_not_shrink_the_limit() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="gradient", initial_limit=20, tolerance=1.5, clock=clock)
    _run_window(limit, clock, concurrency=20, latency=0.010)
    before = limit.limit
    for _ in range(10):
        _run_window(limit, clock, concurrency=limit.limit, latency=0.014)
    assert limit.limit >= before


def test_an_unused_limit_does_not_grow() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="gradient", initial_limit=20, clock=clock)
    for _ in range(20):
        _run_window(limit, clock, concurrency=2, latency=0.010)
    assert limit.limit == 20


def test_aimd_adds_one_per_window_and_cuts_a_tenth_on_overload() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="aimd", initial_limit=10, clock=clock)
    _run_window(limit, clock, concurrency=10, latency=0.010)
    assert limit.limit == 11
    _run_window(limit, clock, concurrency=11, latency=0.010)
    assert limit.limit == 12
    _run_window(limit, clock, concurrency=12, latency=0.050)  # far past the tolerance
    assert limit.limit == 10  # int(12 * 0.9)


def test_aimd_cuts_when_the_app_says_it_is_overloaded() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="aimd", initial_limit=10, clock=clock)
    permit = limit.acquire()
    assert permit is not None
    clock.advance(0.2)
    assert limit.release(permit, overloaded=True) == 9


def test_the_limit_stays_within_its_bounds() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(
        mode="gradient", initial_limit=5, min_limit=4, max_limit=6, clock=clock
    )
    _run_window(limit, clock, concurrency=5, latency=0.010)
    for _ in range(30):
        _run_window(limit, clock, concurrency=limit.limit, latency=0.100)
    assert limit.limit == 4
    for _ in range(30):
        _run_window(limit, clock, concurrency=limit.limit, latency=0.001)
    assert limit.limit == 6


def test_cancelled_requests_teach_nothing_about_latency() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(mode="gradient", initial_limit=10, min_samples=1, clock=clock)
    permit = limit.acquire()
    assert permit is not None
    clock.advance(5.0)
    limit.release(permit, sample=False)
    assert limit.noload_latency is None
    assert limit.in_flight == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "'fast'"),
        ({"initial_limit": 0}, "initial_limit"),
        ({"min_limit": 30}, "ordered"),
        ({"tolerance": 0.5}, "tolerance"),
        ({"max_limit": True}, "max_limit"),
    ],
)
def test_bad_settings_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ConcurrencyLimit(clock=FakeClock(), **options)  # type: ignore[arg-type]
