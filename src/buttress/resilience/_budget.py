"""A retry budget: retries may be at most a share of recent calls, plus a small floor.

As in Envoy and Finagle, every call of one policy deposits, every retry withdraws, and a
retry is refused when it would make recent retries exceed ``ratio`` of recent calls plus
``floor_per_second * window``. A dependency that fails for everyone then sees at most
``1 + ratio`` times its normal load, instead of ``attempts`` times.

Sans-IO: the clock is injected. The deposit is the hot path (every first attempt), so it
is one integer increment without a lock; under thread races an increment may be lost,
which only makes the budget stricter. Withdrawals, on the failure path, take a lock.
Time is cut in ``buckets`` slices of ``window / buckets`` seconds; the count of calls is
sampled at the first withdrawal in each slice. Both approximations are conservative:
retries are counted over slightly more than the window and calls over slightly less, so
the bound holds for every window, exactly.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from .._args import exact_ratio
from .._deadline import Clock

__all__ = ["RetryBudget"]


class RetryBudget:
    """Shared by the calls of one retry policy: ``deposit`` per call, ``try_withdraw`` per retry."""

    __slots__ = (
        "_buckets",
        "_clock",
        "_limit",
        "_lock",
        "_marks",
        "_width",
        "calls",
        "floor",
        "ratio",
        "window",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        floor_per_second: float = 1.0,
        window: float = 10.0,
        buckets: int = 10,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.window = window
        self.floor = floor_per_second * window
        # The bound in integers, as the breaker judges its rates: ``retries <= ratio *
        # calls + floor`` is ``retries * d1 * d2 <= n1 * d2 * calls + n2 * d1`` with
        # ratio = n1/d1 and floor = n2/d2, so 29 retries of 100 calls fit a 0.29 budget
        # (in floats, 0.29 * 100 is 28.999999999999996).
        n1, d1 = exact_ratio(ratio)
        n2, d2 = exact_ratio(floor_per_second * window)
        self._limit = (d1 * d2, n1 * d2, n2 * d1)
        self._buckets = buckets
        self._width = window / buckets
        self._clock = clock
        self._lock = threading.Lock()
        # Calls ever deposited; read under the lock by withdrawals.
        self.calls = 0
        # One mark per slice that saw a withdrawal: [slice number, calls then, retries in it].
        self._marks: deque[list[int]] = deque()

    def fresh(self) -> RetryBudget:
        """A new, empty budget with the same ratio, floor, window and clock."""
        return RetryBudget(
            ratio=self.ratio,
            floor_per_second=self.floor / self.window,
            window=self.window,
            buckets=self._buckets,
            clock=self._clock,
        )

    def deposit(self) -> None:
        """Count one call (a first attempt)."""
        self.calls += 1

    def try_withdraw(self) -> bool:
        """Whether one more retry fits in the budget now; counts it if so."""
        now_slice = math.floor(self._clock() / self._width)
        with self._lock:
            marks = self._marks
            # Retries are summed over buckets + 1 slices: at least the whole window.
            oldest = now_slice - self._buckets
            while marks and marks[0][0] < oldest:
                marks.popleft()
            if not marks or marks[-1][0] != now_slice:
                marks.append([now_slice, self.calls, 0])
            retries = 0
            first_calls = None
            for mark in marks:
                retries += mark[2]
                # Calls are counted from the first mark strictly inside the window, so
                # only calls made within the window are counted.
                if first_calls is None and mark[0] > oldest:
                    first_calls = mark[1]
            recent_calls = self.calls - (first_calls if first_calls is not None else self.calls)
            scale, per_call, floor = self._limit
            if (retries + 1) * scale > per_call * recent_calls + floor:
                return False
            marks[-1][2] += 1
            return True

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, floor_per_second={self.floor / self.window!r}, "
            f"window={self.window!r})"
        )
