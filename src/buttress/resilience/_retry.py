"""Retry: bounded attempts, exponential backoff with jitter, a total deadline, a budget.

The first attempt is the hot path: it reads the clock, the context deadline and the
budget counter, calls, and on success emits one prebuilt event (only if someone listens),
allocating nothing of its own. Everything else (deciding, waiting, emitting) happens on
the failure path, in :meth:`Retry._decide`, shared by the sync and async twins, which
differ only in how they call and how they sleep.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias, TypeVar

from .._args import (
    ExceptionFilter,
    Named,
    check_optional_name,
    exception_matcher,
    in_event_loop,
    seconds,
    warn,
)
from .._deadline import _DEADLINE, Clock
from .._errors import ConfigurationError, TimedOut
from .._events import Registry, RetryFinished, RetryOutcome, RetryScheduled, default_registry
from .._retry_after import parse_retry_after
from ._backoff import JITTERS, Backoff, Jitter
from ._budget import RetryBudget
from ._config import CONFIG
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["Retry", "retry"]

P = ParamSpec("P")
R = TypeVar("R")

RetryAfter: TypeAlias = "Callable[[Any], float | timedelta | str | bytes | None]"
"""Given the exception (or the result) that asked for a retry, the server's wait or None."""
Wait: TypeAlias = "Callable[[Any, int], float | timedelta | None]"
"""Given the exception (or the rejected result) and the attempt number, the wait or None."""

_DEFAULT_NAME = "retry"
_NO_RESULT: Any = object()


class _Keep:
    """The default of :meth:`Retry.copy`'s replacements: keep this retry's own."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


class Retry(Named, Strategy):
    """What :func:`retry` returns: a decorator and caller. See :func:`retry`."""

    __slots__ = (
        "_attempts",
        "_backoff",
        "_budget",
        "_clock",
        "_deadline",
        "_explicit",
        "_name",
        "_on",
        "_on_result",
        "_random",
        "_registry",
        "_retry_after",
        "_retry_after_max",
        "_sleep",
        "_success",
        "_wait_for",
    )

    def __init__(
        self,
        *,
        on: Callable[[BaseException], bool],
        on_result: Callable[[Any], bool] | None,
        attempts: int,
        deadline: float,
        backoff: Backoff,
        retry_after: RetryAfter | None,
        budget: RetryBudget | None,
        name: str | None,
        events: Registry,
        clock: Clock,
        sleep: Callable[[float], object] | None,
        random: Callable[[], float],
        retry_after_max: float = 60.0,
        wait: Wait | None = None,
    ) -> None:
        self._on = on
        self._on_result = on_result
        self._attempts = attempts
        self._deadline = deadline
        self._backoff = backoff
        self._retry_after = retry_after
        self._retry_after_max = retry_after_max
        self._budget = budget
        self._name = name or _DEFAULT_NAME
        self._explicit = name is not None
        self._registry = events
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._wait_for = wait
        self._renamed()

    def _renamed(self) -> None:
        # Built once per name, so a first-attempt success emits without allocating.
        self._success = RetryFinished(self._name, 1, "success", "")

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return Strategy.__call__(self._decorate_named(fn), fn)

    def copy(
        self,
        *,
        name: str,
        on_result: Callable[[Any], bool] | _Keep | None = KEEP,
        retry_after: RetryAfter | _Keep | None = KEEP,
    ) -> Retry:
        """A copy of this retry named ``name``, with a retry budget of its own.

        Everything else is shared (predicates, backoff, clock, event registry), except
        ``on_result`` and ``retry_after`` when given. Use it to give each downstream its
        own budget: retries against a failing host must not spend those of a healthy one
        (the httpx transports do this per host, with their own result predicate).
        """
        if not isinstance(on_result, _Keep) and on_result is not None and not callable(on_result):
            raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
        if (
            not isinstance(retry_after, _Keep)
            and retry_after is not None
            and not callable(retry_after)
        ):
            raise ConfigurationError(f"retry_after must be callable, got {retry_after!r}")
        budget = self._budget
        return Retry(
            on=self._on,
            on_result=self._on_result if isinstance(on_result, _Keep) else on_result,
            attempts=self._attempts,
            deadline=self._deadline,
            backoff=self._backoff,
            retry_after=self._retry_after if isinstance(retry_after, _Keep) else retry_after,
            retry_after_max=self._retry_after_max,
            budget=None if budget is None else budget.fresh(),
            name=check_optional_name(name),
            events=self._registry,
            clock=self._clock,
            sleep=self._sleep,
            random=self._random,
            wait=self._wait_for,
        )

    @property
    def attempts(self) -> int:
        """Attempts in all, the first included."""
        return self._attempts

    @property
    def retry_after_max(self) -> float:
        """The cap of a server-driven wait, in seconds (apart from the backoff's cap)."""
        return self._retry_after_max

    def __repr__(self) -> str:
        b = self._backoff
        return (
            f"retry(name={self._name!r}, attempts={self._attempts}, deadline={self._deadline}, "
            f"wait_initial={b.initial}, wait_max={b.maximum}, jitter={b.jitter!r}, "
            f"budget={self._budget!r})"
        )

    # --- the twins -------------------------------------------------------------------

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        start = self._clock()
        limit = _DEADLINE.get()
        if limit is not None and start >= limit:
            raise self._too_late(start - limit)
        budget = self._budget
        if budget is not None:
            budget.calls += 1  # RetryBudget.deposit, inlined: this is the hot path
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            # Decided outside the handler so a later attempt's error gets no __context__.
            error: Exception | None = exc
            result = _NO_RESULT
        else:
            on_result = self._on_result
            if on_result is None or not on_result(result):
                registry = self._registry
                if registry.active:
                    registry.emit_prebuilt(self._success)
                return result
            error = None
        return self._again_sync(fn, args, kwargs, start, limit, error, result)

    def _again_sync(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        limit: float | None,
        error: Exception | None,
        result: Any,
    ) -> R:
        attempt = 1
        wait = 0.0
        sleep = self._sleep or time.sleep
        while True:
            wait = self._decide(attempt, start, limit, error, result, wait)
            if wait < 0:
                if error is not None:
                    raise error
                return result  # type: ignore[no-any-return]
            if not CONFIG.testing and wait > 0:
                if self._sleep is None and in_event_loop():
                    # A sync call inside a coroutine blocks the loop already; its backoff
                    # would block it for longer. Said once per call, where it was made.
                    warn(
                        f"{self._name}: a sync retry sleeps {wait:.3f}s inside a running event "
                        "loop, blocking every task on it; decorate an async function instead",
                        stacklevel=4,
                    )
                sleep(wait)
                if not self._may_start(attempt, start, limit, error):
                    if error is not None:
                        raise error
                    return result  # type: ignore[no-any-return]
            attempt += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                error = exc
                continue
            if self._on_result is None or not self._on_result(result):
                self._finish(attempt, "success", None)
                return result  # type: ignore[no-any-return]
            error = None

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        start = self._clock()
        limit = _DEADLINE.get()
        if limit is not None and start >= limit:
            raise self._too_late(start - limit)
        budget = self._budget
        if budget is not None:
            budget.calls += 1
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            error: Exception | None = exc
            result = _NO_RESULT
        else:
            on_result = self._on_result
            if on_result is None or not on_result(result):
                registry = self._registry
                if registry.active:
                    registry.emit_prebuilt(self._success)
                return result
            error = None
        return await self._again_async(fn, args, kwargs, start, limit, error, result)

    async def _again_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        limit: float | None,
        error: Exception | None,
        result: Any,
    ) -> R:
        # Imported here, on the failure path, so ``import buttress`` does not load asyncio.
        import asyncio

        attempt = 1
        wait = 0.0
        sleep = self._sleep or asyncio.sleep
        while True:
            wait = self._decide(attempt, start, limit, error, result, wait)
            if wait < 0:
                if error is not None:
                    raise error
                return result  # type: ignore[no-any-return]
            if not CONFIG.testing and wait > 0:
                slept = sleep(wait)
                if inspect.isawaitable(slept):
                    await slept
                if not self._may_start(attempt, start, limit, error):
                    if error is not None:
                        raise error
                    return result  # type: ignore[no-any-return]
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                error = exc
                continue
            if self._on_result is None or not self._on_result(result):
                self._finish(attempt, "success", None)
                return result  # type: ignore[no-any-return]
            error = None

    # --- decisions (shared by both twins) --------------------------------------------

    def _decide(
        self,
        attempt: int,
        start: float,
        limit: float | None,
        error: BaseException | None,
        result: Any,
        previous: float,
    ) -> float:
        """After failed attempt ``attempt``: the wait before the next one, or -1 to stop.

        Emits ``RetryScheduled`` for a retry, ``RetryFinished`` when stopping. Should one
        of the user's callables (``on``, ``on_result``'s verdict was taken already,
        ``retry_after``) raise, its exception propagates with the attempt's exception as
        its ``__context__``, as if it had been raised while handling it.
        """
        try:
            return self._decide_or_raise(attempt, start, limit, error, result, previous)
        except Exception as exc:
            if error is not None and exc is not error and exc.__context__ is None:
                exc.__context__ = error
            raise

    def _decide_or_raise(
        self,
        attempt: int,
        start: float,
        limit: float | None,
        error: BaseException | None,
        result: Any,
        previous: float,
    ) -> float:
        if error is not None and not self._on(error):
            self._finish(attempt, "not_retryable", error)
            return -1.0
        attempts = self._attempts
        if CONFIG.testing:
            attempts = min(attempts, CONFIG.attempts)
        if attempt >= attempts:
            self._finish(attempt, "exhausted", error)
            return -1.0
        wait = self._wait(attempt, result if error is None else error, previous)
        end = start + self._deadline
        if limit is not None and limit < end:
            end = limit
        if self._clock() + wait > end:  # the wait would cross the deadline: not taken
            self._finish(attempt, "deadline", error)
            return -1.0
        # Test mode skips the budget too: a test suite's many quick failures would spend
        # it and make later tests stop early, depending on the order they run in.
        budget = self._budget
        if budget is not None and not CONFIG.testing and not budget.try_withdraw():
            self._finish(attempt, "budget", error)
            return -1.0
        if self._registry.active:
            error_type = "result" if error is None else type(error).__name__
            self._registry.emit(RetryScheduled(self._name, attempt, wait, error_type))
        return wait

    def _wait(self, attempt: int, outcome: Any, previous: float) -> float:
        """The wait after ``outcome`` (the exception, or the rejected result).

        In order: the server's word (``retry_after``, capped by ``retry_after_max``), the
        ``wait`` callable's choice for this outcome (used as given), then the backoff.
        """
        if self._retry_after is not None:
            hint = parse_retry_after(self._retry_after(outcome))
            if hint is not None:
                # The server knows when it can take us again: its wait is honoured up to
                # its own cap (the backoff's wait_max is about our guesses, not its word).
                return min(hint, self._retry_after_max)
        choose = self._wait_for
        if choose is not None:
            chosen = choose(outcome, attempt)
            if chosen is not None:
                return _chosen_wait(chosen)
        return self._backoff.wait(attempt, previous, self._random)

    def _may_start(
        self, attempt: int, start: float, limit: float | None, error: BaseException | None
    ) -> bool:
        """After a wait (which may oversleep): whether the next attempt may still start."""
        end = start + self._deadline
        if limit is not None and limit < end:
            end = limit
        if self._clock() < end:
            return True
        self._finish(attempt, "deadline", error)
        return False

    def _finish(self, attempts: int, outcome: RetryOutcome, error: BaseException | None) -> None:
        if self._registry.active:
            if error is not None:
                error_type = type(error).__name__
            else:
                error_type = "" if outcome == "success" else "result"
            self._registry.emit(RetryFinished(self._name, attempts, outcome, error_type))

    def _too_late(self, late: float) -> TimedOut:
        if self._registry.active:
            self._registry.emit(RetryFinished(self._name, 0, "deadline", TimedOut.__name__))
        return TimedOut(
            f"{self._name}: the deadline passed {late:.3f}s before the call started",
            name=self._name,
            timeout=0.0,
        )


def retry(
    *,
    on: ExceptionFilter,
    on_result: Callable[[Any], bool] | None = None,
    attempts: int = 10,
    deadline: float | timedelta = 45.0,
    wait_initial: float | timedelta = 0.1,
    wait_max: float | timedelta = 5.0,
    wait_exp_base: float = 2.0,
    jitter: Jitter = "full",
    retry_after: RetryAfter | None = None,
    retry_after_max: float | timedelta = 60.0,
    wait: Wait | None = None,
    budget: float | None = 0.2,
    budget_floor: float = 1.0,
    name: str | None = None,
    events: Registry | None = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], object] | None = None,
    random: Callable[[], float] | None = None,
) -> Retry:
    """Retry a sync or async call on ``on`` (and on results ``on_result`` rejects).

    Bounded and safe by default: at most 10 attempts within 45 s in all, waits that grow
    from 0.1 s by x2 up to 5 s with full jitter, and a budget that lets retries be at
    most 20 % of this policy's recent calls (plus 1 retry per second). A wait that would
    cross the deadline (this one's, or the context's, see ``timeout``) is not taken; the
    last exception is then re-raised unchanged, or the last result returned. A server's
    wait (``retry_after``) is honoured up to ``retry_after_max`` (60 s), not ``wait_max``.
    ``wait``, called with the exception (or rejected result) and the attempt number,
    chooses the wait per outcome; ``None`` from it means the backoff's.
    ``on`` must be able to match an ``Exception``: cancellation and Ctrl-C are never
    retried. Every decision is an event (``RetryScheduled``, ``RetryFinished``). See
    docs/retry.md.
    """
    matcher = exception_matcher(on, "on")
    if on_result is not None and not callable(on_result):
        raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
    if isinstance(on, tuple) and not on and on_result is None:
        raise ConfigurationError("on=() with no on_result retries nothing")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigurationError(f"attempts must be an int >= 1, got {attempts!r}")
    total = seconds(deadline, "deadline")
    initial = seconds(wait_initial, "wait_initial")
    maximum = seconds(wait_max, "wait_max")
    if maximum < initial:
        raise ConfigurationError(f"wait_max {wait_max!r} is below wait_initial {wait_initial!r}")
    base = _number(wait_exp_base, "wait_exp_base", low=1.0)
    if jitter not in JITTERS:
        raise ConfigurationError(f"jitter must be one of {JITTERS}, got {jitter!r}")
    if retry_after is not None and not callable(retry_after):
        raise ConfigurationError(f"retry_after must be callable, got {retry_after!r}")
    server_cap = seconds(retry_after_max, "retry_after_max")
    if wait is not None and not callable(wait):
        raise ConfigurationError(f"wait must be callable, got {wait!r}")
    share = None if budget is None else _number(budget, "budget (a share)", low=0.0, high=1.0)
    floor = _number(budget_floor, "budget_floor", low=0.0)
    checked_name = check_optional_name(name)
    if attempts == 1:
        warn("retry(attempts=1) never retries", stacklevel=2)
    if total == 0:
        warn("retry(deadline=0) leaves no time to wait between attempts", stacklevel=2)
    elif total < initial:
        warn(f"retry deadline {total}s is shorter than wait_initial {initial}s", stacklevel=2)
    if share == 0 and floor == 0:
        warn("retry(budget=0, budget_floor=0) never retries", stacklevel=2)
    return Retry(
        on=matcher,
        on_result=on_result,
        attempts=attempts,
        deadline=total,
        backoff=Backoff(initial, maximum, base, jitter),
        retry_after=retry_after,
        retry_after_max=server_cap,
        budget=None
        if share is None
        else RetryBudget(ratio=share, floor_per_second=floor, clock=clock),
        name=checked_name,
        events=events if events is not None else default_registry,
        clock=clock,
        sleep=sleep,
        random=random if random is not None else _default_random(),
        wait=wait,
    )


def _chosen_wait(value: object) -> float:
    """A ``wait`` callable's answer as seconds; a bad one is a ConfigurationError naming it."""
    return seconds(value, "the wait callable's answer")


def _default_random() -> Callable[[], float]:
    # The random module pulls in hashlib; it loads when the first retry is built instead.
    from random import random

    return random


def _number(value: object, what: str, *, low: float, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[low, high]``, or a ConfigurationError naming it."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not low <= value <= high
        or not math.isfinite(value)
    ):
        bounds = f"between {low} and {high}" if high != math.inf else f">= {low}"
        raise ConfigurationError(f"{what} must be a finite number {bounds}, got {value!r}")
    return float(value)
