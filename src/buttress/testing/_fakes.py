"""Test doubles for time and failure: a clock tests move by hand, scripted faults.

Both are for tests only (public through :mod:`buttress.testing`). Production fault
injection, with its own events and metrics, is a separate strategy; a :class:`FaultScript`
emits nothing, so it never shows up in the events, metrics or logs a test asserts on.
"""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .. import Policy
from .._errors import ConfigurationError
from ..strategies import Strategy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

__all__ = ["CALL", "FakeClock", "FaultScript", "inject_faults"]

R = TypeVar("R")


def _seconds(value: float | timedelta, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class FakeClock:
    """A monotonic clock that moves only when a test says so.

    Pass it where strategies take a clock and a sleep: ``retry(..., clock=clock,
    sleep=clock.sleep)``, ``CircuitBreaker(..., clock=clock)``. Calling it reads the
    time; :meth:`sleep` and :meth:`async_sleep` move the time forward at once and record
    the wait in :attr:`sleeps`, so a test can assert the backoff without waiting.

    >>> clock = FakeClock()
    >>> clock.sleep(0.5)
    >>> clock.advance(timedelta(seconds=2))
    >>> clock() - 1000.0, clock.sleeps
    (2.5, [0.5])
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, now: float = 1000.0) -> None:
        # Not zero by default: code that reads 0 as "never happened" must not be fooled.
        if isinstance(now, bool) or not isinstance(now, int | float):
            raise ConfigurationError(f"FakeClock(now=...) must be a number, got {now!r}")
        self._now = float(now)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        """Every wait :meth:`sleep` or :meth:`async_sleep` was asked for, in order."""

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current time, in seconds."""
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move the time forward by ``seconds`` (never backward: the clock is monotonic)."""
        step = _seconds(seconds, "advance(seconds)")
        with self._lock:
            self._now += step

    def sleep(self, seconds: float | timedelta) -> None:
        """Record a wait of ``seconds`` and move the time forward by it, at once."""
        step = _seconds(seconds, "sleep(seconds)")
        with self._lock:
            self.sleeps.append(step)
            self._now += step

    async def async_sleep(self, seconds: float | timedelta) -> None:
        """The async twin of :meth:`sleep`: it returns without suspending."""
        self.sleep(seconds)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now}, sleeps={len(self.sleeps)})"


class _Call:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CALL"


CALL: Final[Any] = _Call()
"""In a :class:`FaultScript`: let this call through to the real function."""


class FaultScript(Strategy):
    """Play a script of outcomes, one per call: the failures a test wants, in order.

    Each outcome is an exception (a class is instantiated anew each time) to raise,
    :data:`CALL` to run the real function, or any other value to return instead of
    calling it. When the script runs out, every call plays ``then`` (by default the
    real call). It is a strategy: it decorates sync and async functions, calls through
    ``script.call(fn, ...)`` and composes innermost in a :class:`~buttress.Policy` (see
    :func:`inject_faults`). It emits no event: it is not production fault injection.

    >>> script = FaultScript([OSError, OSError, "cached"])
    >>> fetch = script(lambda: "fresh")
    >>> for _ in range(2):
    ...     try:
    ...         fetch()
    ...     except OSError:
    ...         pass
    >>> fetch(), fetch(), script.calls, script.faults
    ('cached', 'fresh', 4, 2)
    """

    __slots__ = ("_lock", "_outcomes", "calls", "faults")

    def __init__(self, outcomes: Iterable[object], *, then: object = CALL) -> None:
        self._outcomes: Iterator[object] = itertools.chain(outcomes, itertools.repeat(then))
        self._lock = threading.Lock()
        self.calls = 0
        """How many calls the script has answered."""
        self.faults = 0
        """How many of them raised an exception from the script."""

    @classmethod
    def at_rate(
        cls,
        rate: float,
        fault: object,
        *,
        seed: int = 0,
    ) -> FaultScript:
        """Play ``fault`` on a share ``rate`` of calls, drawn from a generator seeded with
        ``seed`` so every run fails on the same calls; the others run the real function."""
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ConfigurationError(f"rate must be a number from 0 to 1, got {rate!r}")
        from random import Random  # the random module loads hashlib: only when used

        draw = Random(seed).random
        return cls(fault if draw() < rate else CALL for _ in itertools.count())

    def _next(self) -> object:
        with self._lock:  # a generator must not be advanced by two threads at once
            self.calls += 1
            outcome = next(self._outcomes)
            if isinstance(outcome, BaseException) or (
                isinstance(outcome, type) and issubclass(outcome, BaseException)
            ):
                self.faults += 1
        return outcome

    def _play(self, outcome: object) -> object:
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            raise outcome()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        outcome = self._next()
        if outcome is CALL:
            return fn(*args, **kwargs)
        return self._play(outcome)  # type: ignore[return-value]

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        outcome = self._next()
        if outcome is CALL:
            return await fn(*args, **kwargs)
        return self._play(outcome)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"FaultScript(calls={self.calls}, faults={self.faults})"


def inject_faults(policy: Strategy, script: FaultScript) -> Policy:
    """``policy`` with ``script`` as its innermost member: every call the policy lets
    through meets the script first. The members (breakers, budgets...) are the same
    objects, so their state is shared with ``policy``.
    """
    if not isinstance(script, FaultScript):
        raise ConfigurationError(f"inject_faults needs a FaultScript, got {script!r}")
    if isinstance(policy, Policy):
        return Policy(*policy.strategies, script, name=policy.name)
    if not isinstance(policy, Strategy):
        raise ConfigurationError(f"inject_faults needs a policy or a strategy, got {policy!r}")
    return Policy(policy, script)
