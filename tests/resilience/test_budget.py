from __future__ import annotations

import threading
from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.resilience._budget import RetryBudget
from buttress.testing import FakeClock

steps = st.lists(
    st.tuples(
        st.sampled_from(["call", "retry"]),
        st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
    ),
    min_size=1,
    max_size=600,
)


@settings(max_examples=150, deadline=None)
@given(
    steps=steps,
    ratio=st.floats(min_value=0.0, max_value=1.0),
    floor=st.floats(min_value=0.0, max_value=2.0),
)
def test_budget_is_never_exceeded_over_a_long_random_run(
    steps: list[tuple[str, float]], ratio: float, floor: float
) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=ratio, floor_per_second=floor, window=10.0, clock=clock)
    calls: list[float] = []
    granted: list[float] = []
    for kind, advance in steps:
        clock.advance(advance)
        if kind == "call":
            budget.deposit()
            calls.append(clock.now)
        elif budget.try_withdraw():
            granted.append(clock.now)
    for t in granted:
        # Every window (t - 10, t] ending at a granted retry holds the bound.
        retries = bisect_right(granted, t) - bisect_right(granted, t - 10.0)
        recent_calls = bisect_right(calls, t) - bisect_right(calls, t - 10.0)
        assert retries <= ratio * recent_calls + floor * 10.0 + 1e-9


def test_the_floor_allows_a_few_retries_without_traffic() -> None:
    budget = RetryBudget(ratio=0.2, floor_per_second=1.0, window=10.0, clock=FakeClock())
    assert sum(budget.try_withdraw() for _ in range(50)) == 10


def test_retries_are_a_share_of_recent_calls() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, floor_per_second=0.0, window=10.0, clock=clock)
    assert budget.try_withdraw() is False  # the first withdrawal starts counting calls
    for _ in range(100):
        budget.deposit()
    clock.advance(1.0)
    assert sum(budget.try_withdraw() for _ in range(50)) == 20
    # Once the window has passed, those calls no longer count...
    clock.advance(11.0)
    assert budget.try_withdraw() is False
    # ...and new calls do.
    for _ in range(10):
        budget.deposit()
    clock.advance(1.0)
    assert sum(budget.try_withdraw() for _ in range(10)) == 2


def test_threads_sharing_a_budget_never_overdraw_it() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, floor_per_second=0.0, window=10.0, clock=clock)
    budget.try_withdraw()
    for _ in range(200):
        budget.deposit()
    clock.advance(1.0)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [budget.try_withdraw() for _ in range(100)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100


def test_repr_shows_the_settings() -> None:
    budget = RetryBudget(ratio=0.2, floor_per_second=1.0, window=10.0)
    assert repr(budget) == "RetryBudget(ratio=0.2, floor_per_second=1.0, window=10.0)"


def test_the_bound_is_exact_at_its_boundary() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats: the 29th retry must still fit.
    clock = FakeClock()
    budget = RetryBudget(ratio=0.29, floor_per_second=0.0, window=10.0, clock=clock)
    assert not budget.try_withdraw()  # no calls yet; this starts counting them
    for _ in range(100):
        budget.deposit()
    granted = sum(budget.try_withdraw() for _ in range(40))
    assert granted == 29
