"""The circuit breaker's state machine: pure, sans-IO, with the clock passed in.

``admit(now)`` decides before a call and returns a ticket (or ``REJECTED``);
``record(now, ticket, outcome, duration)`` learns after it. The ticket carries the
generation the call was admitted in (every transition starts a new one) and whether it
was a half-open trial, so an outcome that arrives after the state moved on cannot count
against the new state, and a trial permit is always given back exactly once.

::

    CLOSED --(OpeningRule says open)--> OPEN --(reset_timeout passed, next call)--> HALF_OPEN
    HALF_OPEN --(every trial succeeded)--> CLOSED
    HALF_OPEN --(a trial failed or was slow)--> OPEN (reset timeout x reset_backoff)
    HALF_OPEN --(no verdict within half_open_max_wait)--> HALF_OPEN (a new round of trials)
    any --(force_open / force_closed / reset)--> FORCED_OPEN / FORCED_CLOSED / CLOSED

States, outcomes and reasons are enums shared with the Redis backend, whose Lua scripts
use the same codes (:attr:`State.code`, :class:`Outcome`, :attr:`Reason.code`). The rule
for when a closed breaker opens is its own small object, :class:`OpeningRule`.

The core holds no lock: the shell serialises ``admit`` and ``record`` (each a few
microseconds) and runs the protected call between them, outside any lock.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from .._args import exact_ratio

if TYPE_CHECKING:
    from .._events import BreakerState

__all__ = [
    "FAILURE",
    "IGNORED",
    "REJECTED",
    "SUCCESS",
    "BreakerConfig",
    "BreakerCore",
    "CountWindow",
    "OpeningRule",
    "Outcome",
    "Reason",
    "State",
    "TimeWindow",
    "Transition",
    "ratio",
]


class State(enum.StrEnum):
    """A breaker's state; its value is the name events and metrics carry."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"

    @property
    def code(self) -> int:
        """Its number in the Redis hash and the Lua scripts: its position above."""
        return _STATE_CODES[self]

    @property
    def label(self) -> BreakerState:
        """The same name, typed as the events type it."""
        return self.value


class Reason(enum.StrEnum):
    """Why a transition happened; its value is the ``reason`` of the event."""

    NONE = ""
    RESET_TIMEOUT = "reset_timeout"
    HALF_OPEN_FAILURE = "half_open_failure"
    HALF_OPEN_SUCCESS = "half_open_success"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    MANUAL = "manual"
    STORE_UNAVAILABLE = "store_unavailable"
    HALF_OPEN_MAX_WAIT = "half_open_max_wait"  # a round of trials reclaimed (half-open again)

    @property
    def code(self) -> int:
        """Its number in the Lua scripts' replies: its position above."""
        return _REASON_CODES[self]


class Outcome(enum.IntEnum):
    """How a call went, as the breaker counts it (the numbers are the Lua scripts')."""

    SUCCESS = 0
    FAILURE = 1
    IGNORED = 2  # neither: the permit is given back and nothing is counted


_STATE_CODES: Final = {state: code for code, state in enumerate(State)}
_REASON_CODES: Final = {reason: code for code, reason in enumerate(Reason)}
STATES_BY_CODE: Final = tuple(State)
REASONS_BY_CODE: Final = tuple(Reason)

# Module constants: the hot path compares by identity, without an attribute lookup.
SUCCESS: Final = Outcome.SUCCESS
FAILURE: Final = Outcome.FAILURE
IGNORED: Final = Outcome.IGNORED
CLOSED: Final = State.CLOSED
OPEN: Final = State.OPEN
HALF_OPEN: Final = State.HALF_OPEN
FORCED_OPEN: Final = State.FORCED_OPEN
FORCED_CLOSED: Final = State.FORCED_CLOSED
REJECTED: Final = -1

_TIME_BUCKETS: Final = 20  # a time window is kept as 20 buckets: 5% granularity


def ratio(rate: float) -> tuple[int, int]:
    """``rate`` as a fraction of small integers: ``0.55`` is ``(11, 20)``.

    Thresholds are judged as ``failures * den >= num * calls``, in integers, because
    ``0.55 * 100`` is ``55.00000000000001`` and 55 failures of 100 must open the breaker.
    """
    return exact_ratio(rate)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Validated thresholds (seconds as floats). The shell builds it from user arguments.

    ``half_open_max_wait`` defaults to ``reset_timeout``.
    """

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
    half_open_max_wait: float | None = None

    @property
    def trial_wait(self) -> float:
        """How long a round of half-open trials may go unanswered before it is reclaimed."""
        wait = self.half_open_max_wait
        return self.reset_timeout if wait is None else wait

    @property
    def rule(self) -> OpeningRule:
        return OpeningRule.of(self)


@dataclass(frozen=True, slots=True)
class OpeningRule:
    """When a closed breaker opens, given its counts: the breaker's one judgement.

    Kept apart from the state machine (as Polly's ``CircuitBehavior`` is) so the rule can
    be read, tested and mirrored in Lua on its own. Ratios are integer fractions
    (see :func:`ratio`); ``None`` switches a threshold off.
    """

    consecutive_failures: int | None
    failure_ratio: tuple[int, int] | None
    slow_ratio: tuple[int, int] | None
    minimum_calls: int
    counting: bool = field(init=False)

    def __post_init__(self) -> None:
        # Only rate thresholds need a window; consecutive failures need one counter.
        counting = self.failure_ratio is not None or self.slow_ratio is not None
        object.__setattr__(self, "counting", counting)

    @classmethod
    def of(cls, config: BreakerConfig) -> OpeningRule:
        return cls(
            consecutive_failures=config.consecutive_failures,
            failure_ratio=None if config.failure_rate is None else ratio(config.failure_rate),
            slow_ratio=None if config.slow_call_rate is None else ratio(config.slow_call_rate),
            minimum_calls=config.minimum_calls,
        )

    def after_failure(self, consecutive: int) -> Reason | None:
        """The reason to open after the ``consecutive``-th failure in a row, if any."""
        limit = self.consecutive_failures
        if limit is not None and consecutive >= limit:
            return Reason.CONSECUTIVE_FAILURES
        return None

    def judge(self, calls: int, failures: int, slow: int) -> Reason | None:
        """The reason to open given a window's totals, if any (``>=`` the threshold)."""
        if calls < self.minimum_calls:
            return None
        fr = self.failure_ratio
        if fr is not None and failures * fr[1] >= fr[0] * calls:
            return Reason.FAILURE_RATE
        sr = self.slow_ratio
        if sr is not None and slow * sr[1] >= sr[0] * calls:
            return Reason.SLOW_CALL_RATE
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: Reason


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
        "_successes",
        "_timeout",
        "_until",
        "_window",
        "closed_ticket",
        "config",
        "rule",
        "state",
        "transitions",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.rule = OpeningRule.of(config)
        self.state: State = CLOSED
        self.transitions: list[Transition] = []
        self._generation = 0
        self._timeout = config.reset_timeout
        # While open: when the open period ends. While half-open: when the current round
        # of trials is given up on if no verdict came (a hung or lost trial).
        self._until = 0.0
        self._counting = self.rule.counting
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

    def _move(self, new: State, reason: Reason) -> None:
        self.transitions.append(Transition(self.state, new, reason))
        self.state = new
        self._generation += 1
        self.closed_ticket = self._generation << 1 if new is CLOSED else -1
        self._fresh()

    def _open(self, now: float, reason: Reason) -> None:
        self._until = now + self._timeout
        self._move(OPEN, reason)

    # -- deciding -------------------------------------------------------------------

    def admit(self, now: float) -> int:
        """A ticket for one call, or ``REJECTED``."""
        state = self.state
        if state is CLOSED or state is FORCED_CLOSED:
            return self._generation << 1
        if state is OPEN:
            if now < self._until:
                return REJECTED
            self._move(HALF_OPEN, Reason.RESET_TIMEOUT)
            self._until = now + self.config.trial_wait
        elif state is FORCED_OPEN:
            return REJECTED
        # half-open: at most ``half_open_permits`` trials until one verdict
        if self._in_flight + self._successes >= self.config.half_open_permits:
            if now < self._until:
                return REJECTED
            # No verdict for a whole round: a trial hung, or its outcome was lost (exit
            # in another context, a dead task). Reclaim the permits: a new generation (a
            # late outcome of the old round counts for nothing), announced as half-open
            # again, so a hung trial shows in the transitions.
            self._move(HALF_OPEN, Reason.HALF_OPEN_MAX_WAIT)
            self._until = now + self.config.trial_wait
        self._in_flight += 1
        return (self._generation << 1) | 1

    def record(self, now: float, ticket: int, outcome: Outcome, duration: float) -> bool:
        """Learn how the call admitted with ``ticket`` went; ``True`` if it counted."""
        if ticket == self.closed_ticket and outcome is SUCCESS and not self._counting:
            self._consecutive = 0  # the common case, kept short
            return True
        if ticket >> 1 != self._generation or self.state is FORCED_CLOSED:
            return False  # admitted under an earlier state, or counting is switched off
        config = self.config
        slow_limit = config.slow_call_duration
        slow = slow_limit is not None and duration >= slow_limit and outcome is not IGNORED
        if ticket & 1:
            return self._trial(now, outcome, slow)
        if outcome is IGNORED:
            return True
        failure = outcome is FAILURE
        rule = self.rule
        if self._counting:
            self._window.add(now, failure, slow)
        if failure:
            self._consecutive += 1
            reason = rule.after_failure(self._consecutive)
            if reason is not None:
                self._open(now, reason)
                return True
        else:
            self._consecutive = 0
        if self._counting:
            reason = rule.judge(*self._window.totals(now))
            if reason is not None:
                self._open(now, reason)
        return True

    def _trial(self, now: float, outcome: Outcome, slow: bool) -> bool:
        config = self.config
        self._in_flight -= 1
        if outcome is IGNORED:
            return True  # the permit is free for another trial
        if outcome is FAILURE or (slow and config.slow_call_rate is not None):
            self._timeout = min(self._timeout * config.reset_backoff, config.max_reset_timeout)
            self._open(now, Reason.HALF_OPEN_FAILURE)
        else:
            self._successes += 1
            if self._successes >= config.half_open_permits:
                self._timeout = config.reset_timeout
                self._move(CLOSED, Reason.HALF_OPEN_SUCCESS)
        return True

    # -- reading and steering ---------------------------------------------------------

    def retry_after(self, now: float) -> float | None:
        """Seconds until a call may pass; ``None`` when forced open.

        Open: until the open period ends. Half-open with every permit out: until the
        round is reclaimed. Otherwise 0 (a call would be admitted now).
        """
        state = self.state
        if state is FORCED_OPEN:
            return None
        full = self._in_flight + self._successes >= self.config.half_open_permits
        if state is OPEN or (state is HALF_OPEN and full):
            return max(self._until - now, 0.0)
        return 0.0

    def window_totals(self, now: float) -> tuple[int, int, int]:
        """Calls, failures and slow calls in the current window."""
        return self._window.totals(now)

    def trip(self, now: float, reason: Reason) -> None:
        """Open now unless already open or forced: carries a shared open state over."""
        if self.state is CLOSED or self.state is HALF_OPEN:
            self._open(now, reason)

    def force(self, state: Literal["forced_open", "forced_closed"]) -> None:
        target = State(state)
        if self.state is not target:
            self._move(target, Reason.MANUAL)

    def reset(self) -> None:
        self._timeout = self.config.reset_timeout
        if self.state is not CLOSED:
            self._move(CLOSED, Reason.MANUAL)
        else:
            self._generation += 1
            self.closed_ticket = self._generation << 1
            self._fresh()
