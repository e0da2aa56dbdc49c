"""The retry budget's window as a specification, with slices other than one second.

A window of 4 s in 2 buckets has 2-second slices: slice ``n`` is ``[2n, 2n + 2)``.
Retries are summed over the last ``buckets + 1`` slices (at least the whole window);
calls are counted from the first withdrawal mark strictly inside the window.
"""

from __future__ import annotations

from buttress.resilience._budget import RetryBudget
from buttress.testing import FakeClock


def budget(clock: FakeClock, *, ratio: float, floor_per_second: float) -> RetryBudget:
    return RetryBudget(
        ratio=ratio, floor_per_second=floor_per_second, window=4.0, buckets=2, clock=clock
    )


def test_retries_fit_exactly_up_to_ratio_times_calls_plus_floor() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.5, floor_per_second=0.25)  # floor: 1 retry per window
    assert b.try_withdraw() is True  # the floor alone
    for _ in range(4):
        b.deposit()
    assert b.calls == 4
    # 0.5 * 4 calls + 1 = 3 retries in all.
    assert b.try_withdraw() is True
    assert b.try_withdraw() is True
    assert b.try_withdraw() is False
    assert b.try_withdraw() is False  # a refusal is not counted as a retry


def test_retries_of_the_oldest_slice_still_count_one_slice_past_the_window() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.5, floor_per_second=0.25)
    assert b.try_withdraw() is True
    for _ in range(4):
        b.deposit()
    assert b.try_withdraw() is True
    assert b.try_withdraw() is True  # 3 retries in slice 0
    clock.advance(2.0)  # slice 1
    assert b.try_withdraw() is False
    clock.advance(2.0)  # slice 2: slice 0's retries are still summed
    assert b.try_withdraw() is False
    clock.advance(1.999)  # still slice 2
    assert b.try_withdraw() is False
    clock.advance(0.001)  # slice 3: slice 0 is gone, the floor is free again
    assert b.try_withdraw() is True
    assert b.try_withdraw() is False


def test_calls_made_before_the_window_are_not_counted() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.5, floor_per_second=0.0)
    assert b.try_withdraw() is False  # no calls yet, no floor: a mark at slice 0
    for _ in range(10):
        b.deposit()
    clock.advance(2.0)  # slice 1: slice 0's mark is inside the window, its 10 calls count
    assert b.try_withdraw() is True
    clock.advance(2.0)  # slice 2: the window starts after slice 0, whose calls are out
    assert b.try_withdraw() is False


def test_calls_counted_in_the_window_allow_their_share_of_retries() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.25, floor_per_second=0.0)
    assert b.try_withdraw() is False  # the mark: calls are counted from here
    for _ in range(8):
        b.deposit()
    clock.advance(1.0)  # same slice
    assert b.try_withdraw() is True
    assert b.try_withdraw() is True  # 0.25 * 8 = 2
    assert b.try_withdraw() is False
    for _ in range(4):
        b.deposit()
    assert b.try_withdraw() is True  # 0.25 * 12 = 3
    assert b.try_withdraw() is False


def test_a_long_silence_forgets_every_mark() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.0, floor_per_second=0.5)  # floor: 2 retries per window
    assert b.try_withdraw() is True
    assert b.try_withdraw() is True
    assert b.try_withdraw() is False
    clock.advance(100.0)
    assert b.try_withdraw() is True
    assert b.try_withdraw() is True
    assert b.try_withdraw() is False


def test_a_ratio_of_029_admits_29_retries_of_100_calls() -> None:
    clock = FakeClock(0)
    b = RetryBudget(ratio=0.29, floor_per_second=0.0, window=10.0, clock=clock)
    assert b.try_withdraw() is False
    for _ in range(100):
        b.deposit()
    granted = sum(b.try_withdraw() for _ in range(40))
    assert granted == 29  # in floats, 0.29 * 100 is 28.999999999999996


def test_fresh_keeps_the_settings_and_drops_the_counts() -> None:
    clock = FakeClock(0)
    b = RetryBudget(ratio=0.5, floor_per_second=0.25, window=4.0, buckets=2, clock=clock)
    b.deposit()
    assert b.try_withdraw() is True
    new = b.fresh()
    assert new.calls == 0
    assert (new.ratio, new.floor, new.window) == (0.5, 1.0, 4.0)
    assert repr(new) == "RetryBudget(ratio=0.5, floor_per_second=0.25, window=4.0)"
    assert new.try_withdraw() is True  # its own floor, unspent
    assert new.try_withdraw() is False
    clock.advance(2.0)
    assert new.try_withdraw() is False  # the same clock and 2-second slices
    clock.advance(4.0)
    assert new.try_withdraw() is True


def test_a_fractional_floor_is_judged_exactly() -> None:
    clock = FakeClock(0)
    # floor 0.125/s x 4 s = 0.5 retries; ratio 0.5 of 4 calls: 2.5 retries, so 2.
    b = budget(clock, ratio=0.5, floor_per_second=0.125)
    assert b.try_withdraw() is False  # 0.5 of a retry is none
    for _ in range(4):
        b.deposit()
    assert [b.try_withdraw() for _ in range(3)] == [True, True, False]


def test_each_slice_keeps_its_own_retries() -> None:
    clock = FakeClock(0)
    b = budget(clock, ratio=0.0, floor_per_second=0.5)  # floor: 2 retries per window
    b.deposit()
    assert b.try_withdraw() is True  # slice 0
    clock.advance(2.0)
    assert b.try_withdraw() is True  # slice 1
    assert b.try_withdraw() is False
    clock.advance(4.0)  # slice 3: slice 0 is out, slice 1 still summed
    assert b.try_withdraw() is True
    assert b.try_withdraw() is False


def test_the_defaults_are_a_fifth_of_calls_and_one_retry_a_second_over_ten() -> None:
    clock = FakeClock(0)
    b = RetryBudget(clock=clock)
    assert repr(b) == "RetryBudget(ratio=0.2, floor_per_second=1.0, window=10.0)"
    assert sum(b.try_withdraw() for _ in range(12)) == 10  # the floor: 1/s x 10 s
    clock.advance(10.999)  # one-second slices: slice 10 still sums slice 0
    assert b.try_withdraw() is False
    clock.advance(0.001)
    assert b.try_withdraw() is True
    for _ in range(50):
        b.deposit()
    clock.advance(1.0)  # the 50 calls are in the window from here on
    granted = sum(b.try_withdraw() for _ in range(40))
    assert granted == 9 + 10  # the floor left, plus a fifth of 50 calls


def test_fresh_keeps_the_slices() -> None:
    clock = FakeClock(0)
    b = RetryBudget(ratio=0.0, floor_per_second=0.25, window=4.0, buckets=2, clock=clock)
    new = b.fresh()
    assert new.try_withdraw() is True
    clock.advance(4.5)  # slice 2 of 2-second slices: slice 0 is still summed
    assert new.try_withdraw() is False
    clock.advance(1.5)
    assert new.try_withdraw() is True
