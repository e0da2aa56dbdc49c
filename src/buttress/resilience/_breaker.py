"""``CircuitBreaker``: the public shell around :mod:`._breaker_core`.

The protected call never runs under a lock: the breaker takes its lock to admit, lets
go, runs the call, and takes the lock again to record the outcome. A slow call therefore
never holds up anyone else, and a half-open breaker still admits at most its permits,
because a permit is taken at admission and given back at recording.

``with breaker:`` needs to carry the ticket and start time of one use from ``__enter__``
to ``__exit__``. That state is per use, so it lives in a context variable (a stack, for
nested uses) owned by the breaker, never on the breaker itself: threads and asyncio tasks
each see their own.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from .._args import check_fraction, check_int, check_name, check_seconds
from .._errors import BulkheadFull, CircuitOpen, ConfigurationError, DeadlineExceeded, RateLimited
from .._events import (
    BreakerCallRecorded,
    BreakerRejected,
    BreakerState,
    BreakerTransition,
    Registry,
    default_registry,
)
from ._breaker_backend import BreakerBackend, BreakerStore, LocalBreaker
from ._breaker_core import (
    FAILURE,
    IGNORED,
    REJECTED,
    SUCCESS,
    BreakerConfig,
    Outcome,
    State,
    Transition,
)
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

__all__ = ["CircuitBreaker", "LocalBreaker"]

R = TypeVar("R")
_log = logging.getLogger("buttress")

# A refusal says when to come back; never "now" (callers that honour it would spin), even
# when the open period ended between the decision and this reading of the clock.
MIN_RETRY_AFTER: Final = 0.001


class _Unset:
    """The default of options whose value follows from the others (see ``_build_config``)."""

    def __repr__(self) -> str:
        return "<derived>"


UNSET: Any = _Unset()

# Refusals by strategies inside the breaker: the caller's own congestion, not the
# dependency's health, so by default they do not count (a timeout does). Nor does the
# caller's own budget running out (DeadlineExceeded: a propagated or local deadline).
CALLER_SIDE_REJECTIONS: tuple[type[Exception], ...] = (
    BulkheadFull,
    RateLimited,
    CircuitOpen,
    DeadlineExceeded,
)

_OUTCOME_NAMES: tuple[Literal["success", "failure", "ignored"], ...] = (
    "success",
    "failure",
    "ignored",
)


class _Use:
    """One ``with breaker:`` use: its ticket, start time and the token to undo the push."""

    __slots__ = ("start", "ticket", "token")

    def __init__(self, ticket: int, start: float) -> None:
        self.ticket = ticket
        self.start = start
        self.token: contextvars.Token[tuple[_Use, ...]] | None = None


def _exception_types(name: str, value: object) -> tuple[type[Exception], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise ConfigurationError(
                f"{name} must be Exception subclasses (cancellation and Ctrl-C never count), "
                f"got {value!r}"
            )
    return types


class CircuitBreaker(Strategy):
    """Stop calling a dependency that keeps failing, and try it again after a while.

    The breaker opens after ``consecutive_failures`` failures in a row (5 unless a rate
    threshold is given), or when the failure rate (or the share of calls slower than
    ``slow_call_duration``) over the last ``window`` calls (``window_type="count"``) or
    seconds (``"time"``) reaches ``failure_rate`` (``slow_call_rate``), once the window
    holds ``minimum_calls`` (10, or the count window's size if smaller).
    It stays open ``reset_timeout`` seconds, multiplied by ``reset_backoff`` (capped at
    ``max_reset_timeout``) each time a trial fails, then lets ``half_open_permits``
    trial calls through: all must succeed to close it, one failure opens it again. A
    round of trials left without a verdict for ``half_open_max_wait`` (by default
    ``reset_timeout``; a hung call, an exit in another context) is reclaimed and new
    trials are let through.

    Exceptions of ``failure_on`` count as failures, those of ``ignore`` do not count at
    all, any other exception counts as a success (the dependency answered). By default
    ``ignore`` holds the refusals of strategies inside the breaker that say nothing about
    the dependency (``BulkheadFull``, ``RateLimited``, another breaker's ``CircuitOpen``,
    the caller's own ``DeadlineExceeded``);
    a ``TimedOut`` inside it does count. Only
    ``Exception`` subclasses count: cancellation and Ctrl-C give the permit back and
    are not recorded. ``store=RedisStore(...)`` shares the state between processes.
    """

    __slots__ = (
        "_backend",
        "_clock",
        "_config",
        "_failure_on",
        "_ignore",
        "_on_transition",
        "_recorded",
        "_registry",
        "_rejected",
        "_slow_limit",
        "_uses",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        consecutive_failures: int | None = UNSET,
        failure_rate: float | None = None,
        slow_call_rate: float | None = None,
        slow_call_duration: float | timedelta | None = None,
        window: float | timedelta = 100,
        window_type: Literal["count", "time"] = "count",
        minimum_calls: int = UNSET,
        reset_timeout: float | timedelta = 30.0,
        reset_backoff: float = 1.0,
        max_reset_timeout: float | timedelta = UNSET,
        half_open_permits: int = 1,
        half_open_max_wait: float | timedelta | None = None,
        failure_on: type[Exception] | tuple[type[Exception], ...] = Exception,
        ignore: type[Exception] | tuple[type[Exception], ...] = CALLER_SIDE_REJECTIONS,
        on_transition: Callable[[BreakerTransition], None] | None = None,
        store: BreakerStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        events: Registry | None = None,
    ) -> None:
        self.name = check_name(name)
        self._config = _build_config(
            consecutive_failures=consecutive_failures,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            slow_call_duration=slow_call_duration,
            window=window,
            window_type=window_type,
            minimum_calls=minimum_calls,
            reset_timeout=reset_timeout,
            reset_backoff=reset_backoff,
            max_reset_timeout=max_reset_timeout,
            half_open_permits=half_open_permits,
            half_open_max_wait=half_open_max_wait,
        )
        self._failure_on = _exception_types("failure_on", failure_on)
        self._ignore = _exception_types("ignore", ignore)
        if on_transition is not None and not callable(on_transition):
            raise ConfigurationError(f"on_transition must be callable, got {on_transition!r}")
        self._on_transition = on_transition
        self._clock = clock
        self._registry = events if events is not None else default_registry
        self._slow_limit = self._config.slow_call_duration
        # Built once: the success path emits a shared event instead of allocating one.
        self._recorded = {
            (code, slow): BreakerCallRecorded(self.name, _OUTCOME_NAMES[code], slow)
            for code in (SUCCESS, FAILURE, IGNORED)
            for slow in (False, True)
        }
        self._rejected = {state: BreakerRejected(self.name, state.label) for state in State}
        self._uses: contextvars.ContextVar[tuple[_Use, ...]] = contextvars.ContextVar(
            f"buttress_breaker_{self.name}", default=()
        )
        self._backend: BreakerBackend
        if store is None:
            self._backend = LocalBreaker(self._config, clock, self._announce)
        else:
            self._backend = store.breaker_backend(
                self.name, self._config, clock, self._announce, self._registry
            )

    # -- reading and steering ---------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state as of the last decision (an open breaker turns half-open on the next call)."""
        return self._backend.current_state().label

    @property
    def time_until_half_open(self) -> float | None:
        """Seconds until a trial call may pass: 0 unless open, ``None`` when forced open."""
        return self._backend.retry_after()

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (or :meth:`force_closed`)."""
        self._backend.force("forced_open")

    def force_closed(self) -> None:
        """Admit every call and count nothing until :meth:`reset`."""
        self._backend.force("forced_closed")

    def reset(self) -> None:
        """Back to closed with an empty window and the initial reset timeout."""
        self._backend.reset()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r})"

    # -- events -----------------------------------------------------------------------

    def _announce(self, moved: list[Transition]) -> None:
        for step in moved:
            event = BreakerTransition(self.name, step.old.label, step.new.label, step.reason.value)
            if self._on_transition is not None:
                try:
                    self._on_transition(event)
                except Exception:
                    _log.exception("on_transition of breaker %r failed on %r", self.name, event)
            if self._registry.active:
                self._registry.emit(event)

    def _reject(self) -> CircuitOpen:
        state, retry_after = self._backend.rejection()
        if retry_after is not None and retry_after < MIN_RETRY_AFTER:
            retry_after = MIN_RETRY_AFTER
        if self._registry.active:
            self._registry.emit_prebuilt(self._rejected[state])
        when = "" if retry_after is None else f"; retry in {retry_after:.3f}s"
        return CircuitOpen(
            f"circuit breaker {self.name!r} is {state}{when}",
            name=self.name,
            retry_after=retry_after,
        )

    def _classify(self, exc: BaseException) -> Outcome:
        if not isinstance(exc, Exception) or isinstance(exc, self._ignore):
            return IGNORED
        return FAILURE if isinstance(exc, self._failure_on) else SUCCESS

    def _recorded_event(self, counted: bool, outcome: Outcome, duration: float) -> None:
        if counted and self._registry.active:
            slow = self._slow_limit is not None and duration >= self._slow_limit
            self._registry.emit_prebuilt(self._recorded[outcome, slow and outcome != IGNORED])

    # -- calls ------------------------------------------------------------------------

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        backend = self._backend
        ticket = backend.admit()
        if ticket == REJECTED:
            raise self._reject()
        # Durations only matter for slow calls: without a threshold, no clock is read.
        clock = self._clock if self._slow_limit is not None else None
        start = clock() if clock is not None else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome = self._classify(exc)
            duration = clock() - start if clock is not None else 0.0
            self._recorded_event(backend.record(ticket, outcome, duration), outcome, duration)
            raise
        duration = clock() - start if clock is not None else 0.0
        counted = backend.record(ticket, SUCCESS, duration)
        if self._registry.active:
            self._recorded_event(counted, SUCCESS, duration)
        return result

    async def run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        backend = self._backend
        ticket = backend.admit() if backend.local else await backend.admit_async()
        if ticket == REJECTED:
            raise self._reject()
        clock = self._clock if self._slow_limit is not None else None
        start = clock() if clock is not None else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            outcome = self._classify(exc)
            duration = clock() - start if clock is not None else 0.0
            if backend.local:
                counted = backend.record(ticket, outcome, duration)
            else:
                counted = await backend.record_async(ticket, outcome, duration)
            self._recorded_event(counted, outcome, duration)
            raise
        duration = clock() - start if clock is not None else 0.0
        if backend.local:
            counted = backend.record(ticket, SUCCESS, duration)
        else:
            counted = await backend.record_async(ticket, SUCCESS, duration)
        if self._registry.active:
            self._recorded_event(counted, SUCCESS, duration)
        return result

    # -- context manager ----------------------------------------------------------------

    def _push(self, ticket: int) -> None:
        if ticket == REJECTED:
            raise self._reject()
        use = _Use(ticket, self._clock())
        use.token = self._uses.set((*self._uses.get(), use))

    def _pop(self, exc: BaseException | None) -> tuple[_Use, Outcome, float]:
        stack = self._uses.get()
        if not stack:
            raise RuntimeError(f"circuit breaker {self.name!r} exited without entering")
        use = stack[-1]
        if use.token is not None:
            self._uses.reset(use.token)
        outcome = SUCCESS if exc is None else self._classify(exc)
        return use, outcome, self._clock() - use.start

    def __enter__(self) -> CircuitBreaker:
        self._push(self._backend.admit())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        use, outcome, duration = self._pop(exc)
        self._recorded_event(self._backend.record(use.ticket, outcome, duration), outcome, duration)

    async def __aenter__(self) -> CircuitBreaker:
        self._push(await self._backend.admit_async())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        use, outcome, duration = self._pop(exc)
        counted = await self._backend.record_async(use.ticket, outcome, duration)
        self._recorded_event(counted, outcome, duration)


def _build_config(
    *,
    consecutive_failures: object,
    failure_rate: object,
    slow_call_rate: object,
    slow_call_duration: object,
    window: object,
    window_type: object,
    minimum_calls: object,
    reset_timeout: object,
    reset_backoff: object,
    max_reset_timeout: object,
    half_open_permits: object,
    half_open_max_wait: object,
) -> BreakerConfig:
    """Check each option, then make them consistent with each other or refuse.

    Options left at their default follow the ones given: a rate threshold alone switches
    the consecutive-failure count off; ``minimum_calls`` shrinks to a count window
    smaller than 10; ``max_reset_timeout`` grows to a ``reset_timeout`` above 300 s. Two
    options given explicitly that contradict each other are a ConfigurationError naming
    both.
    """
    rate = None if failure_rate is None else check_fraction("failure_rate", failure_rate)
    slow_rate = None if slow_call_rate is None else check_fraction("slow_call_rate", slow_call_rate)
    counting = rate is not None or slow_rate is not None
    if consecutive_failures is UNSET:
        consecutive: int | None = None if counting else 5
    elif consecutive_failures is None:
        consecutive = None
    else:
        consecutive = check_int("consecutive_failures", consecutive_failures, minimum=1)
    slow_duration = (
        None
        if slow_call_duration is None
        else check_seconds("slow_call_duration", slow_call_duration)
    )
    if slow_rate is not None and slow_duration is None:
        raise ConfigurationError("slow_call_rate needs slow_call_duration, got None")
    if consecutive is None and not counting:
        raise ConfigurationError(
            "a breaker needs consecutive_failures, failure_rate or slow_call_rate; all are None"
        )
    kind: Literal["count", "time"]
    if window_type == "count":
        kind, size = "count", float(check_int("window", window, minimum=1))
    elif window_type == "time":
        kind, size = "time", check_seconds("window", window)
    else:
        raise ConfigurationError(f"window_type must be 'count' or 'time', got {window_type!r}")
    if minimum_calls is UNSET:
        minimum = min(10, int(size)) if kind == "count" else 10
    else:
        minimum = check_int("minimum_calls", minimum_calls, minimum=1)
        if kind == "count" and minimum > size and counting:
            raise ConfigurationError(
                f"minimum_calls={minimum} is larger than window={int(size)}: a count window "
                "never holds that many calls, so the rate thresholds could never be judged"
            )
    base = check_seconds("reset_timeout", reset_timeout)
    if max_reset_timeout is UNSET:
        ceiling = max(300.0, base)
    else:
        ceiling = check_seconds("max_reset_timeout", max_reset_timeout)
        if ceiling < base:
            raise ConfigurationError(
                f"max_reset_timeout={max_reset_timeout!r} is below reset_timeout={base}: "
                "the open period could never reach its own starting value"
            )
    if (
        not isinstance(reset_backoff, int | float)
        or isinstance(reset_backoff, bool)
        or not 1 <= reset_backoff <= 100
    ):
        raise ConfigurationError(
            f"reset_backoff must be a number in [1, 100], got {reset_backoff!r}"
        )
    trial_wait = (
        None
        if half_open_max_wait is None
        else check_seconds("half_open_max_wait", half_open_max_wait)
    )
    return BreakerConfig(
        consecutive_failures=consecutive,
        failure_rate=rate,
        slow_call_rate=slow_rate,
        slow_call_duration=slow_duration,
        window=size,
        window_type=kind,
        minimum_calls=minimum,
        reset_timeout=base,
        reset_backoff=float(reset_backoff),
        max_reset_timeout=ceiling,
        half_open_permits=check_int("half_open_permits", half_open_permits, minimum=1),
        half_open_max_wait=trial_wait,
    )
