"""The one error tree of buttress.

::

    Exception
     +-- ButtressError                  anything buttress raises on its own
          +-- ConfigurationError        a bad argument or setting (also a ValueError)
          +-- Rejected                  a call buttress refused to make, or stopped
               +-- CircuitOpen          the breaker is open (or half-open and full)
               +-- BulkheadFull         no slot and no room (or time) to wait
               +-- RateLimited          no token left
               |    +-- Throttled       adaptive throttling refused it locally
               +-- TimedOut             the deadline passed (also a TimeoutError)
                    +-- DeadlineExceeded  the caller's own budget ran out, not the dependency

    Warning
     +-- ButtressWarning                a legal but surprising value

Errors raised by the protected call itself are never wrapped: retry re-raises the last
exception unchanged, and a breaker lets the original exception through after counting it.
``Rejected`` is what a fallback catches to degrade gracefully when buttress refused a call.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFull",
    "ButtressError",
    "ButtressWarning",
    "CircuitOpen",
    "ConfigurationError",
    "DeadlineExceeded",
    "RateLimited",
    "Rejected",
    "Throttled",
    "TimedOut",
]


class ButtressError(Exception):
    """Base class of every exception buttress raises on its own."""


class ConfigurationError(ButtressError, ValueError):
    """A bad argument or setting. The message names the offending value."""


class Rejected(ButtressError):
    """buttress refused (or stopped) a call to protect the caller or the dependency.

    ``name`` is the name of the strategy that refused.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class CircuitOpen(Rejected):
    """The circuit breaker does not admit calls right now.

    ``retry_after`` is the number of seconds until the breaker lets a trial call through,
    or ``None`` when it was forced open.
    """

    def __init__(self, message: str, *, name: str, retry_after: float | None) -> None:
        super().__init__(message, name=name)
        self.retry_after = retry_after


class BulkheadFull(Rejected):
    """Every slot of the bulkhead is taken and no waiting place (or time) was left."""


class RateLimited(Rejected):
    """The rate limiter had no token. ``retry_after`` is the time until the next one."""

    def __init__(self, message: str, *, name: str, retry_after: float) -> None:
        super().__init__(message, name=name)
        self.retry_after = retry_after


class Throttled(RateLimited):
    """Adaptive throttling refused the call locally: the dependency has been refusing most
    requests, so this one was not sent. ``probability`` is the chance of refusal it had;
    ``retry_after`` is 0 (the next call may be admitted)."""

    def __init__(self, message: str, *, name: str, probability: float) -> None:
        super().__init__(message, name=name, retry_after=0.0)
        self.probability = probability


class TimedOut(Rejected, TimeoutError):
    """The call ran past its deadline (async), or its deadline had passed before it ran."""

    def __init__(self, message: str, *, name: str, timeout: float) -> None:
        super().__init__(message, name=name)
        self.timeout = timeout


class DeadlineExceeded(TimedOut):
    """The caller's deadline, not the dependency, ended the call.

    Raised by the httpx transports when an attempt timed out because its timeouts were
    cut to the time left before the deadline (propagated by the caller or bound locally).
    The dependency did nothing wrong, so circuit breakers do not count it by default and
    it is never retried; ``timeout`` is the time the attempt had.
    """


class ButtressWarning(UserWarning):
    """A legal value that is probably a mistake (say, a retry with a zero deadline)."""
