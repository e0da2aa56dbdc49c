"""Timeout: async calls are cancelled; sync calls run under a deadline others honour.

Python cannot pre-empt a blocking sync call, so the sync twin does not pretend to: it
binds the deadline in the context (see :mod:`._deadline`), which retry, the httpx
transport and anything reading :func:`remaining` respect, and refuses to start a call
whose deadline has already passed. The async twin cancels the work at the deadline and
raises :class:`TimedOut`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .._args import Named, check_optional_name, seconds, warn
from .._deadline import _DEADLINE, Clock
from .._errors import TimedOut
from .._events import Registry, TimeoutExpired, default_registry
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["Timeout", "timeout"]

P = ParamSpec("P")
R = TypeVar("R")


class Timeout(Named, Strategy):
    """What :func:`timeout` returns. See :func:`timeout`."""

    __slots__ = ("_clock", "_explicit", "_name", "_registry", "_seconds")

    def __init__(self, seconds: float, *, name: str | None, events: Registry, clock: Clock) -> None:
        self._seconds = seconds
        self._name = name or "timeout"
        self._explicit = name is not None
        self._registry = events
        self._clock = clock

    @property
    def seconds(self) -> float:
        """The time each call may take."""
        return self._seconds

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return Strategy.__call__(self._decorate_named(fn), fn)

    def __repr__(self) -> str:
        return f"timeout({self._seconds}, name={self._name!r})"

    def _expired(self, timeout: float, message: str) -> TimedOut:
        if self._registry.active:
            self._registry.emit(TimeoutExpired(self._name, timeout))
        return TimedOut(f"{self._name}: {message}", name=self._name, timeout=timeout)

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        now = self._clock()
        current = _DEADLINE.get()
        if current is not None and now >= current:
            raise self._expired(self._seconds, "the deadline passed before the call started")
        deadline = now + self._seconds
        if current is not None and current < deadline:
            deadline = current
        token = _DEADLINE.set(deadline)
        try:
            return fn(*args, **kwargs)
        finally:
            _DEADLINE.reset(token)

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        import asyncio  # loaded already when a coroutine runs; not at ``import buttress``

        now = self._clock()
        current = _DEADLINE.get()
        if current is not None and now >= current:
            raise self._expired(self._seconds, "the deadline passed before the call started")
        budget = self._seconds
        deadline = now + budget
        if current is not None and current < deadline:  # an enclosing deadline comes first
            deadline = current
            budget = current - now
        token = _DEADLINE.set(deadline)
        try:
            scope = asyncio.timeout(budget)
            try:
                async with scope:
                    return await fn(*args, **kwargs)
            except TimeoutError:
                if scope.expired():  # ours, not a TimeoutError raised by the call itself
                    message = f"the call took longer than {budget:.3f}s"
                    raise self._expired(budget, message) from None
                raise
        finally:
            _DEADLINE.reset(token)


def timeout(
    seconds_: float | timedelta,
    /,
    *,
    name: str | None = None,
    events: Registry | None = None,
    clock: Clock = time.monotonic,
) -> Timeout:
    """Bound each call to ``seconds_``.

    Async calls are cancelled at the deadline and raise ``TimedOut``. Sync calls run
    with the deadline bound in the context: retry never waits past it and the httpx
    transport shortens its own timeouts to it, but a blocking call already running is
    not interrupted (Python cannot pre-empt it). Either way, a call whose deadline has
    already passed raises ``TimedOut`` without running. See docs/timeout.md.
    """
    value = seconds(seconds_, "timeout seconds")
    if value == 0:
        warn("timeout(0) refuses (sync) or cancels (async) every call", stacklevel=2)
    return Timeout(
        value,
        name=check_optional_name(name),
        events=events if events is not None else default_registry,
        clock=clock,
    )
