"""Client-side adaptive throttling (Google SRE book, "Handling Overload").

Each client keeps, over a sliding window, how many requests it made and how many the
dependency accepted, and refuses a new request locally with probability

    max(0, (requests - k * accepts) / (requests + 1))

so that, when the dependency refuses most work, clients stop sending work that would be
refused anyway (a retry budget alone never stops first attempts). With ``k = 2`` a
client sends about twice what the dependency accepts.

``requests`` counts the requests sent, not the local refusals. The SRE book counts both;
then a long outage drives the probability towards 1 (at 50 calls a second over 10 s,
99.7 %), and since a client that sends almost nothing learns almost nothing, recovery
takes several windows. Counted as sent, a dependency accepting a share ``a`` of requests
sees the probability settle at ``1 - k * a`` (a steady probe), one refusing everything
still gets about the square root of the window's calls, and once it accepts again the
probability is back to zero within about half a window.

:class:`ThrottleWindow` is the sans-IO core (clock and random injected by the caller);
:class:`Throttle` is the strategy around it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._args import ExceptionFilter, Named, check_int, check_optional_name, exception_matcher
from .._args import seconds as _seconds
from .._deadline import Clock
from .._errors import ConfigurationError, DeadlineExceeded, Rejected, Throttled, TimedOut
from .._events import Registry, ThrottleRejected, ThrottleUpdated, default_registry
from ._retry import KEEP, _default_random, _Keep, _number
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["Throttle", "ThrottleWindow", "throttle"]

R = TypeVar("R")
_DEFAULT_NAME = "throttle"


class ThrottleWindow:
    """Requests and accepts over the last ``window`` seconds, in ``buckets`` slices."""

    __slots__ = ("_accepts", "_buckets", "_k", "_lock", "_requests", "_slices", "_width")

    def __init__(self, *, k: float, window: float, buckets: int) -> None:
        self._k = k
        self._buckets = buckets
        self._width = window / buckets
        self._lock = threading.Lock()
        self._slices: deque[list[int]] = deque()  # [slice number, requests, accepts]
        self._requests = 0
        self._accepts = 0

    def fresh(self) -> ThrottleWindow:
        return ThrottleWindow(k=self._k, window=self._width * self._buckets, buckets=self._buckets)

    def _roll(self, now: float) -> tuple[list[int], bool]:
        """The current slice (made if needed) after dropping those out of the window;
        whether it is new. Called under the lock."""
        number = math.floor(now / self._width)
        slices = self._slices
        oldest = number - self._buckets
        while slices and slices[0][0] <= oldest:
            _, requests, accepts = slices.popleft()
            self._requests -= requests
            self._accepts -= accepts
        if slices and slices[-1][0] == number:
            return slices[-1], False
        current = [number, 0, 0]
        slices.append(current)
        return current, True

    def probability(self, now: float) -> float:
        """The chance that a request made now is refused locally."""
        with self._lock:
            self._roll(now)
            requests, accepts = self._requests, self._accepts
        return max(0.0, (requests - self._k * accepts) / (requests + 1))

    def admit(self, now: float, draw: float) -> float | None:
        """``None`` to send the request, else the probability with which it was refused.

        ``draw`` is uniform in [0, 1). A request sent is counted by :meth:`record` once
        its outcome is known; a refusal is not counted (see the module doc).
        """
        chance = self.probability(now)
        return None if draw >= chance else chance

    def record(self, now: float, accepted: bool) -> bool:
        """Count one request sent; whether a new slice began (time to report the ratio)."""
        with self._lock:
            current, new = self._roll(now)
            current[1] += 1
            self._requests += 1
            if accepted:
                current[2] += 1
                self._accepts += 1
        return new

    def counts(self, now: float) -> tuple[int, int]:
        """``(requests, accepts)`` in the window."""
        with self._lock:
            self._roll(now)
            return self._requests, self._accepts


class Throttle(Named, Strategy):
    """What :func:`throttle` returns: a decorator and caller. See :func:`throttle`."""

    __slots__ = (
        "_clock",
        "_explicit",
        "_name",
        "_on",
        "_on_result",
        "_random",
        "_registry",
        "_window",
    )

    def __init__(
        self,
        *,
        window: ThrottleWindow,
        on: Callable[[BaseException], bool],
        on_result: Callable[[Any], bool] | None,
        name: str | None,
        events: Registry,
        clock: Clock,
        random: Callable[[], float],
    ) -> None:
        self._window = window
        self._on = on
        self._on_result = on_result
        self._name = name or _DEFAULT_NAME
        self._explicit = name is not None
        self._registry = events
        self._clock = clock
        self._random = random

    def copy(
        self, *, name: str, on_result: Callable[[Any], bool] | _Keep | None = KEEP
    ) -> Throttle:
        """A copy named ``name`` with a window of its own (one per destination).

        ``on_result``, when given, replaces the predicate of results that mean "refused"
        (the httpx transports pass one for 429 and 5xx answers).
        """
        if not isinstance(on_result, _Keep) and on_result is not None and not callable(on_result):
            raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
        return Throttle(
            window=self._window.fresh(),
            on=self._on,
            on_result=self._on_result if isinstance(on_result, _Keep) else on_result,
            name=check_optional_name(name),
            events=self._registry,
            clock=self._clock,
            random=self._random,
        )

    def acceptance(self) -> float:
        """The share of the window's requests the dependency accepted (1.0 with none)."""
        requests, accepts = self._window.counts(self._clock())
        return accepts / requests if requests else 1.0

    def probability(self) -> float:
        """The chance that a call made now is refused locally."""
        return self._window.probability(self._clock())

    def __repr__(self) -> str:
        w = self._window
        return f"throttle(name={self._name!r}, k={w._k}, window={w._width * w._buckets})"

    def _admit(self) -> None:
        chance = self._window.admit(self._clock(), self._random())
        if chance is None:
            return
        registry = self._registry
        if registry.active:
            registry.emit(ThrottleRejected(self._name, chance))
            self._report()
        raise Throttled(
            f"{self._name}: refused locally (the dependency accepted {self.acceptance():.0%} "
            "of recent requests)",
            name=self._name,
            probability=chance,
        )

    def _report(self) -> None:
        requests, accepts = self._window.counts(self._clock())
        ratio = accepts / requests if requests else 1.0
        self._registry.emit(ThrottleUpdated(self._name, requests, accepts, ratio))

    def _failed(self, exc: Exception) -> None:
        # Refusals by strategies inside (a bulkhead, a breaker) and the caller's own
        # deadline never reached the dependency: not counted. A timeout did reach it.
        if isinstance(exc, Rejected) and (
            not isinstance(exc, TimedOut) or isinstance(exc, DeadlineExceeded)
        ):
            return
        self._counted(not self._on(exc))

    def _answered(self, result: Any) -> None:
        on_result = self._on_result
        self._counted(on_result is None or not on_result(result))

    def _counted(self, accepted: bool) -> None:
        if self._window.record(self._clock(), accepted) and self._registry.active:
            self._report()

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        self._admit()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._failed(exc)
            raise
        self._answered(result)
        return result

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        self._admit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self._failed(exc)
            raise
        self._answered(result)
        return result


def throttle(
    *,
    k: float = 2.0,
    window: float | timedelta = 3.0,
    buckets: int = 10,
    on: ExceptionFilter = Exception,
    on_result: Callable[[Any], bool] | None = None,
    name: str | None = None,
    events: Registry | None = None,
    clock: Clock = time.monotonic,
    random: Callable[[], float] | None = None,
) -> Throttle:
    """Refuse calls locally while the dependency refuses most of them (SRE adaptive throttling).

    A call is refused with ``Throttled`` (a ``RateLimited``) with probability
    ``max(0, (requests - k * accepts) / (requests + 1))`` over the last ``window``
    seconds. ``on`` says which exceptions mean the dependency refused (every exception
    by default; buttress's own refusals and the caller's deadline are never counted),
    ``on_result`` which results do. Lower ``k`` throttles harder. The window is short
    (3 s) on purpose: an outage is noticed within a second, and recovery as quickly; a
    window holding seconds of healthy history lets the first seconds of an outage through. Emits
    ``ThrottleRejected`` and ``ThrottleUpdated`` (the acceptance ratio). See
    docs/throttling.md.
    """
    factor = _number(k, "k", low=1.0)
    span = _seconds(window, "window")
    if span == 0:
        raise ConfigurationError(f"window must be > 0, got {window!r}")
    check_int("buckets", buckets, minimum=1)
    matcher = exception_matcher(on, "on")
    if on_result is not None and not callable(on_result):
        raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
    return Throttle(
        window=ThrottleWindow(k=factor, window=span, buckets=buckets),
        on=matcher,
        on_result=on_result,
        name=check_optional_name(name),
        events=events if events is not None else default_registry,
        clock=clock,
        random=random if random is not None else _default_random(),
    )
