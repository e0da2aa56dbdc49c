"""The circuit breaker's state machine: pure, sans-IO, with the clock passed in.

``admit(now)`` decides before a call and returns a ticket (or ``REJECTED``);
``record(now, ticket, outcome, duration)`` learns after it. The ticket carries the
generation the call was admitted in (every transition starts a new one) and whether it
was a half-open trial, so an outcome that arrives after the state moved on cannot count
against the new state, and a trial permit is always given back exactly once.

The core holds no lock: the shell serialises ``admit`` and ``record`` (each a few
microseconds) and runs the protected call between them, outside any lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from .._events import BreakerState

__all__ = [
    "FAILURE",
    "IGNORED",
    "REJECTED",
    "SUCCESS",
    "BreakerConfig",
    "BreakerCore",
    "CountWindow",
    "TimeWindow",
    "Transition",
]

SUCCESS: Final = 0
FAILURE: Final = 1
IGNORED: Final = 2
REJECTED: Final = -1

_TIME_BUCKETS: Final = 20  # a time window is kept as 20 buckets: 5% granularity


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Validated thresholds (seconds as floats). The shell builds it from user arguments."""

    consecutive_failures: int | None = 5
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    slow_call_duration: float | None = None
    window: float = 100
    window_type: Literal["count", "time"] = "count"
    minimum_calls: int = 10
    reset_timeout: float = 30.0
    reset_backoff: float = 1.0
    max_reset_timeout: float = 300.0
    half_open_permits: int = 1


@dataclass(frozen=True, slots=True)
class Transition:
    old: BreakerState
    new: BreakerState
    reason: str


class CountWindow:
    """The last ``size`` outcomes in a ring, with running totals: O(1) per call."""

    __slots__ = ("_codes", "_next", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._codes = bytearray(size)  # bit 0: present, bit 1: failure, bit 2: slow
        self._next = 0
        self.calls = self.failures = self.slow = 0

    def add(self, now: float, failure: bool, slow: bool) -> None:
        old = self._codes[self._next]
        if old:
            self.calls -= 1
            self.failures -= (old >> 1) & 1
            self.slow -= (old >> 2) & 1
        self._codes[self._next] = 1 | (failure << 1) | (slow << 2)
        self._next = (self._next + 1) % len(self._codes)
        self.calls += 1
        self.failures += failure
        self.slow += slow

    def totals(self, now: float) -> tuple[int, int, int]:
        return self.calls, self.failures, self.slow


class TimeWindow:
    """Outcomes of the last ``seconds`` in fixed buckets, with running totals.

    Buckets that fall out of the window are subtracted as time moves on, so both adding
    and reading are amortised O(1).
    """

    __slots__ = ("_calls", "_failures", "_head", "_slow", "_width", "calls", "failures", "slow")

    def __init__(self, seconds: float) -> None:
        self._width = seconds / _TIME_BUCKETS
        self._calls = [0] * _TIME_BUCKETS
        self._failures = [0] * _TIME_BUCKETS
        self._slow = [0] * _TIME_BUCKETS
        self._head: int | None = None  # index of the newest bucket
        self.calls = self.failures = self.slow = 0

    def _advance(self, now: float) -> int:
        index = math.floor(now / self._width)
        head = self._head
        if head is None or index - head >= _TIME_BUCKETS:
            for slot in range(_TIME_BUCKETS):
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
            self.calls = self.failures = self.slow = 0
        elif index > head:
            for step in range(head + 1, index + 1):
                slot = step % _TIME_BUCKETS
                self.calls -= self._calls[slot]
                self.failures -= self._failures[slot]
                self.slow -= self._slow[slot]
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
        else:
            # A clock that went back (or a late outcome) lands in the newest bucket.
            return head % _TIME_BUCKETS
        self._head = index
        return index % _TIME_BUCKETS

    def add(self, now: float, failure: bool, slow: bool) -> None:
        slot = self._advance(now)
        self._calls[slot] += 1
        self._failures[slot] += failure
        self._slow[slot] += slow
        self.calls += 1
        self.failures += failure
        self.slow += slow

    def totals(self, now: float) -> tuple[int, int, int]:
        self._advance(now)
        return self.calls, self.failures, self.slow


class BreakerCore:
    """One breaker's state. Not thread-safe on its own: callers serialise access.

    Transitions are appended to :attr:`transitions`; the shell drains that list and
    announces them once it has let go of its lock.
    """

    __slots__ = (
        "_consecutive",
        "_counting",
        "_generation",
        "_in_flight",
        "_open_until",
        "_successes",
        "_timeout",
        "_window",
        "closed_ticket",
        "config",
        "state",
        "transitions",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.state: BreakerState = "closed"
        self.transitions: list[Transition] = []
        self._generation = 0
        self._timeout = config.reset_timeout
        self._open_until = 0.0
        # Only rate thresholds need a window; consecutive failures need one counter.
        self._counting = config.failure_rate is not None or config.slow_call_rate is not None
        # The ticket every call gets while closed, or -1: one attribute that the shell
        # may read without the lock, because it changes in one store.
        self.closed_ticket = 0
        self._fresh()

    def _fresh(self) -> None:
        if self.config.window_type == "count":
            self._window: CountWindow | TimeWindow = CountWindow(
                int(self.config.window) if self._counting else 1
            )
        else:
            self._window = TimeWindow(self.config.window)
        self._consecutive = 0
        self._in_flight = 0
        self._successes = 0

    def _move(self, new: BreakerState, reason: str) -> None:
        self.transitions.append(Transition(self.state, new, reason))
        self.state = new
        self._generation += 1
        self.closed_ticket = self._generation << 1 if new == "closed" else -1
        self._fresh()

    def _open(self, now: float, reason: str) -> None:
        self._open_until = now + self._timeout
        self._move("open", reason)

    # -- deciding -------------------------------------------------------------------

    def admit(self, now: float) -> int:
        """A ticket for one call, or ``REJECTED``."""
        state = self.state
        if state == "closed" or state == "forced_closed":
            return self._generation << 1
        if state == "open":
            if now < self._open_until:
                return REJECTED
            self._move("half_open", "reset_timeout")
        elif state == "forced_open":
            return REJECTED
        # half-open: at most ``half_open_permits`` trials until one verdict
        if self._in_flight + self._successes >= self.config.half_open_permits:
            return REJECTED
        self._in_flight += 1
        return (self._generation << 1) | 1

    def record(self, now: float, ticket: int, outcome: int, duration: float) -> bool:
        """Learn how the call admitted with ``ticket`` went; ``True`` if it counted."""
        if ticket == self.closed_ticket and outcome == SUCCESS and not self._counting:
            self._consecutive = 0  # the common case, kept short
            return True
        if ticket >> 1 != self._generation or self.state == "forced_closed":
            return False  # admitted under an earlier state, or counting is switched off
        config = self.config
        slow_limit = config.slow_call_duration
        slow = slow_limit is not None and duration >= slow_limit and outcome != IGNORED
        if ticket & 1:
            self._in_flight -= 1
            if outcome == IGNORED:
                return True  # the permit is free for another trial
            if outcome == FAILURE or (slow and config.slow_call_rate is not None):
                self._timeout = min(self._timeout * config.reset_backoff, config.max_reset_timeout)
                self._open(now, "half_open_failure")
            else:
                self._successes += 1
                if self._successes >= config.half_open_permits:
                    self._timeout = config.reset_timeout
                    self._move("closed", "half_open_success")
            return True
        if outcome == IGNORED:
            return True
        failure = outcome == FAILURE
        if self._counting:
            self._window.add(now, failure, slow)
        if failure:
            self._consecutive += 1
            limit = config.consecutive_failures
            if limit is not None and self._consecutive >= limit:
                self._open(now, "consecutive_failures")
                return True
        else:
            self._consecutive = 0
        if not self._counting:
            return True
        calls, failures, slow_calls = self._window.totals(now)
        if calls < config.minimum_calls:
            return True
        if config.failure_rate is not None and failures >= config.failure_rate * calls:
            self._open(now, "failure_rate")
        elif config.slow_call_rate is not None and slow_calls >= config.slow_call_rate * calls:
            self._open(now, "slow_call_rate")
        return True

    # -- reading and steering ---------------------------------------------------------

    def retry_after(self, now: float) -> float | None:
        """Seconds until a trial call may pass; ``None`` when forced open."""
        if self.state == "forced_open":
            return None
        if self.state == "open":
            return max(self._open_until - now, 0.0)
        return 0.0

    def window_totals(self, now: float) -> tuple[int, int, int]:
        """Calls, failures and slow calls in the current window."""
        return self._window.totals(now)

    def trip(self, now: float, reason: str) -> None:
        """Open now unless already open or forced: carries a shared open state over."""
        if self.state in ("closed", "half_open"):
            self._open(now, reason)

    def force(self, state: Literal["forced_open", "forced_closed"]) -> None:
        if self.state != state:
            self._move(state, "manual")

    def reset(self) -> None:
        self._timeout = self.config.reset_timeout
        if self.state != "closed":
            self._move("closed", "manual")
        else:
            self._generation += 1
            self.closed_ticket = self._generation << 1
            self._fresh()
