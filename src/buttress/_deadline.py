"""The deadline of the current context: one contextvar holding a monotonic instant.

``timeout`` sets it for sync calls (a blocking call cannot be pre-empted, but everything
inside can look at the time left), retry never starts a wait or an attempt past it, and
the httpx transport and the middleware read or bind it. Nested scopes keep the earliest
deadline, and every scope resets the variable with its token on the way out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, TypeAlias

from ._args import seconds as _seconds

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

__all__ = ["Clock", "bind_deadline", "current_deadline", "deadline_scope", "remaining"]

Clock: TypeAlias = Callable[[], float]
"""A monotonic clock in seconds; ``time.monotonic`` unless a test injects a fake one."""

_DEADLINE: ContextVar[float | None] = ContextVar("buttress_deadline", default=None)


def current_deadline() -> float | None:
    """The current deadline as an instant of the monotonic clock, or ``None``."""
    return _DEADLINE.get()


def remaining(clock: Clock = time.monotonic) -> float | None:
    """Seconds left before the current deadline (negative once passed), or ``None``."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - clock()


def bind_deadline(seconds: float, clock: Clock = time.monotonic) -> Token[float | None]:
    """Bind a deadline ``seconds`` (checked already: finite, >= 0) from now; reset the token.

    An earlier deadline in force stays. The lean form of :class:`deadline_scope`, for the
    middleware's per-request path.
    """
    deadline = clock() + seconds
    current = _DEADLINE.get()
    if current is not None and current < deadline:
        deadline = current
    return _DEADLINE.set(deadline)


class deadline_scope:  # lower case: used like a function, ``with deadline_scope(2.0):``
    """Bind a deadline ``seconds`` from now for the ``with`` block.

    An enclosing earlier deadline wins: a scope can only shorten the time left. ``None``
    binds nothing new (handy when an incoming request carries no deadline). ``__enter__``
    returns the deadline in force inside the block.
    """

    __slots__ = ("_clock", "_seconds", "_token")

    def __init__(self, seconds: float | timedelta | None, *, clock: Clock = time.monotonic) -> None:
        self._seconds = None if seconds is None else _seconds(seconds, "deadline seconds")
        self._clock = clock
        self._token: Token[float | None] | None = None

    def __enter__(self) -> float | None:
        if self._seconds is None:
            self._token = _DEADLINE.set(_DEADLINE.get())
        else:
            self._token = bind_deadline(self._seconds, self._clock)
        return _DEADLINE.get()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None
