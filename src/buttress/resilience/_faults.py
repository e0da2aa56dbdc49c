"""Fault injection: fail, answer or slow down a share of calls on purpose, at run time.

A chaos strategy in the manner of Polly's: it composes in a :class:`Policy` like any
other strategy, so a team can prove in staging (or carefully in production) that its
fallbacks, breakers and alerts work. It is off until :meth:`FaultInjection.enable` is
called, and the switch and the rate are read once per call without a lock, so turning it
on or off from another thread (an admin endpoint, a signal handler) takes effect at the
next call.

Per call, one draw decides: when ``random() < rate`` the call is faulted. A faulted call
first waits ``latency`` (if set), then raises ``exception`` or answers ``result`` without
calling (if set), otherwise it calls through late. To fail 5 % of calls and slow down
another 10 %, compose two injections.
"""

from __future__ import annotations

import copy
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from .._args import check_name, seconds
from .._errors import ConfigurationError
from .._events import FaultInjected, Registry, default_registry
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["FaultInjection"]

R = TypeVar("R")

_NO_RESULT: Final[Any] = object()

ExceptionSource = BaseException | type[BaseException] | Callable[[], BaseException]


class FaultInjection(Strategy):
    """Inject faults into a share of calls: ``FaultInjection("payments", rate=0.05, ...)``.

    ``exception`` is what a faulted call raises: an exception type, an instance (a
    shallow copy is raised each time, so concurrent raises never share a traceback) or a
    callable returning one. ``result`` is what a
    faulted call answers instead of calling; give one of the two, or neither. ``latency``
    (seconds or a timedelta) delays a faulted call first. ``rate`` is the share of calls
    faulted, in [0, 1]. Nothing is injected until :meth:`enable` is called (or
    ``enabled=True``). ``random``, ``sleep`` and ``events`` (the event registry) are
    injectable for tests; ``sleep`` may return an awaitable for async calls. See
    docs/faults.md.
    """

    __slots__ = (
        "_enabled",
        "_exception",
        "_latency",
        "_lock",
        "_name",
        "_random",
        "_rate",
        "_registry",
        "_result",
        "_sleep",
    )

    def __init__(
        self,
        name: str,
        /,
        *,
        rate: float = 0.1,
        exception: ExceptionSource | None = None,
        result: object = _NO_RESULT,
        latency: float | timedelta | None = None,
        enabled: bool = False,
        random: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        events: Registry | None = None,
    ) -> None:
        self._name = check_name(name)
        self._rate = _check_rate(rate)
        self._exception = _exception_factory(exception)
        if self._exception is not None and result is not _NO_RESULT:
            raise ConfigurationError(
                f"FaultInjection {name!r}: give exception= or result=, not both"
            )
        self._result = result
        self._latency: float | None = None
        if latency is not None:
            self._latency = seconds(latency, "latency")
            if self._latency == 0:
                raise ConfigurationError(f"latency must be > 0 (or None), got {latency!r}")
        if self._exception is None and result is _NO_RESULT and self._latency is None:
            raise ConfigurationError(
                f"FaultInjection {name!r} injects nothing: give exception=, result= or latency="
            )
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"enabled must be a bool, got {enabled!r}")
        self._enabled = enabled
        self._random = random if random is not None else _default_random()
        self._sleep = sleep
        self._registry = events if events is not None else default_registry
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The name events and metrics carry."""
        return self._name

    @property
    def enabled(self) -> bool:
        """Whether faults are being injected."""
        return self._enabled

    @property
    def rate(self) -> float:
        """The share of calls faulted while enabled."""
        return self._rate

    @property
    def latency(self) -> float | None:
        """The delay of a faulted call, in seconds, or ``None``."""
        return self._latency

    def enable(self, *, rate: float | None = None) -> None:
        """Start injecting (at ``rate``, if given) from the next call on."""
        with self._lock:
            if rate is not None:
                self._rate = _check_rate(rate)
            self._enabled = True

    def disable(self) -> None:
        """Stop injecting from the next call on."""
        with self._lock:
            self._enabled = False

    def set_rate(self, rate: float) -> None:
        """Change the share of calls faulted; it does not switch injection on or off."""
        checked = _check_rate(rate)
        with self._lock:
            self._rate = checked

    def __repr__(self) -> str:
        kinds = [k for k in ("exception", "result", "latency") if self._has(k)]
        state = "enabled" if self._enabled else "disabled"
        return (
            f"FaultInjection({self._name!r}, rate={self._rate}, kinds={'+'.join(kinds)}, {state})"
        )

    def _has(self, kind: str) -> bool:
        if kind == "exception":
            return self._exception is not None
        if kind == "result":
            return self._result is not _NO_RESULT
        return self._latency is not None

    def _hit(self) -> bool:
        # Two unlocked attribute reads: a switch from another thread shows at the next call.
        return self._enabled and self._random() < self._rate

    def _emit(self, kind: Literal["exception", "result", "latency"]) -> None:
        registry = self._registry
        if registry.active:
            registry.emit(FaultInjected(self._name, kind))

    def _after_latency(self) -> Any:
        """The exception to raise or the result to answer, after any latency was injected."""
        if self._exception is not None:
            self._emit("exception")
            raise self._exception()
        self._emit("result")
        return self._result

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        if not self._hit():
            return fn(*args, **kwargs)
        if self._latency is not None:
            self._emit("latency")
            (self._sleep or time.sleep)(self._latency)
        if self._exception is None and self._result is _NO_RESULT:
            return fn(*args, **kwargs)
        answer: R = self._after_latency()
        return answer

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        if not self._hit():
            return await fn(*args, **kwargs)
        if self._latency is not None:
            self._emit("latency")
            if self._sleep is None:
                import asyncio  # loaded already when a coroutine runs

                await asyncio.sleep(self._latency)
            else:
                slept = self._sleep(self._latency)
                if inspect.isawaitable(slept):
                    await slept
        if self._exception is None and self._result is _NO_RESULT:
            return await fn(*args, **kwargs)
        answer: R = self._after_latency()
        return answer


def _check_rate(rate: object) -> float:
    if (
        not isinstance(rate, int | float)
        or isinstance(rate, bool)
        or not math.isfinite(rate)
        or not 0 <= rate <= 1
    ):
        raise ConfigurationError(f"rate must be a number in [0, 1], got {rate!r}")
    return float(rate)


def _exception_factory(exception: object) -> Callable[[], BaseException] | None:
    if exception is None:
        return None
    if isinstance(exception, type) and issubclass(exception, BaseException):
        kind = exception
        return lambda: kind("fault injected on purpose")
    if isinstance(exception, BaseException):
        instance = exception
        return lambda: copy.copy(instance)
    if callable(exception):
        factory: Callable[[], BaseException] = exception
        return factory
    raise ConfigurationError(
        f"exception must be an exception type, an instance or a callable returning one,"
        f" got {exception!r}"
    )


def _default_random() -> Callable[[], float]:
    # The random module pulls in hashlib; it loads when the first injection is built.
    from random import random

    return random
