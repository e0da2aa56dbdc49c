"""The sans-IO core of inbound admission: an adaptive concurrency limit.

A request takes a :class:`Permit` before the app runs and gives it back when the app's
work ends; the limit on permits in flight is learnt from the latency the service itself
shows, in the manner of TCP congestion control as Netflix's concurrency-limits and
Envoy's adaptive concurrency filter apply it to servers:

- ``"gradient"`` (the default) compares the no-load latency (the fastest answers lately)
  with the median latency of the last window (the median, as Envoy's sample percentile,
  so a few stalls of the host do not read as queueing). While the ratio, times ``tolerance``, stays
  at 1 or more nothing queues, and a limit in use grows by about the square root of itself;
  once latency rises the limit shrinks in proportion, at most by half per window, smoothed.
- ``"aimd"``: additive increase, multiplicative decrease. The limit grows by one per window
  while latency stays within ``tolerance`` of the no-load latency, and drops by 10% when it
  does not or when the app answered that it was overloaded (503, 504).
- ``"fixed"``: the limit stays where it is set.

Criticality shares the limit: critical requests may fill all of it, default ones 90%,
sheddable ones 75%, so under overload sheddable work is refused first and critical last.

No I/O, no sleeps: time comes from an injected clock, and the lock is held only over a
few arithmetic steps, so the same core serves threads (WSGI) and an event loop (ASGI).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Final, Literal, TypeAlias

from .._errors import ConfigurationError

__all__ = [
    "CRITICALITIES",
    "ConcurrencyLimit",
    "Criticality",
    "LimitMode",
    "Permit",
]

Criticality: TypeAlias = Literal["critical", "default", "sheddable"]
"""How much a request matters: sheddable requests are refused first, critical ones last."""
LimitMode: TypeAlias = Literal["gradient", "aimd", "fixed"]

CRITICALITIES: Final[tuple[Criticality, ...]] = ("critical", "default", "sheddable")
# The share of the limit each criticality may fill.
SHARE: Final[dict[str, float]] = {"critical": 1.0, "default": 0.9, "sheddable": 0.75}
_MAX_CUT: Final = 0.5  # the gradient never cuts more than half of the limit per window
_SMOOTHING: Final = 0.2  # how much of the gradient's target one window moves the limit
_BACKOFF: Final = 0.9  # AIMD's multiplicative decrease
# How fast the no-load latency follows window minimums that are higher than it (a new
# release that is slower for good): slowly, or sustained queueing would pass for normal.
_NOLOAD_DRIFT: Final = 0.01
_KEPT: Final = 512  # latencies kept per window for its median: bounded memory and sorting


class Permit:
    """One admitted request's place under the limit; given back exactly once."""

    __slots__ = ("released", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.released = False


class ConcurrencyLimit:
    """How many requests may be in flight, learnt from their latency (see the module doc).

    :meth:`acquire` says whether a request of a criticality may start; :meth:`release`
    gives its permit back with what was learnt: ``sample`` when its latency means
    something (not for a cancelled or failed request), ``overloaded`` when the app said
    it was (a 503 or 504 of its own). Every ``window`` seconds with at least
    ``min_samples`` samples, the limit is updated; :meth:`release` then returns it.
    """

    __slots__ = (
        "_clock", "_count", "_dropped", "_limit", "_lock", "_min", "_noload", "_peak",
        "_samples", "_window_start", "admitted", "in_flight", "max_limit", "min_limit",
        "min_samples", "mode", "shed", "tolerance", "window",
    )  # fmt: skip

    def __init__(
        self,
        *,
        mode: LimitMode = "gradient",
        initial_limit: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        tolerance: float = 1.5,
        window: float = 0.1,
        min_samples: int = 10,
        clock: Callable[[], float],
    ) -> None:
        if mode not in ("gradient", "aimd", "fixed"):
            raise ConfigurationError(f'limit must be "gradient", "aimd" or an int, got {mode!r}')
        for what, value in (
            ("initial_limit", initial_limit),
            ("min_limit", min_limit),
            ("max_limit", max_limit),
            ("min_samples", min_samples),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{what} must be an int >= 1, got {value!r}")
        if not min_limit <= initial_limit <= max_limit:
            raise ConfigurationError(
                f"the limits must be ordered min_limit <= initial_limit <= max_limit, got "
                f"{min_limit!r}, {initial_limit!r}, {max_limit!r}"
            )
        if (
            not isinstance(tolerance, int | float)
            or isinstance(tolerance, bool)
            or not math.isfinite(tolerance)
            or tolerance < 1.0
        ):
            raise ConfigurationError(f"tolerance must be a number >= 1, got {tolerance!r}")
        self.mode: LimitMode = mode
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.tolerance = float(tolerance)
        self.window = window
        self.min_samples = min_samples
        self._clock = clock
        self._lock = threading.Lock()
        self._limit = float(initial_limit)
        self.in_flight = 0
        self.admitted = 0  # requests let in, ever (readiness reads the change between probes)
        self.shed = 0  # requests refused, ever
        self._noload: float | None = None
        self._window_start = clock()
        self._samples: list[float] = []  # the window's latencies, the first _KEPT of them
        self._count = 0
        self._min = math.inf
        self._peak = 0
        self._dropped = False

    @property
    def limit(self) -> int:
        """The limit now, as a whole number of requests (critical ones may fill it)."""
        return int(self._limit)

    @property
    def noload_latency(self) -> float | None:
        """The latency of the fastest answers lately, in seconds; ``None`` before any."""
        return self._noload

    def acquire(self, criticality: Criticality = "default") -> Permit | None:
        """A permit if a request of ``criticality`` may start now, else ``None``."""
        with self._lock:
            in_flight = self.in_flight
            # At least one request is always let in, so the limit can learn again.
            if in_flight and in_flight >= self._limit * SHARE[criticality]:
                self.shed += 1
                return None
            self.admitted += 1
            in_flight = self.in_flight = in_flight + 1
            if in_flight > self._peak:
                self._peak = in_flight
        return Permit(self._clock())

    def release(
        self, permit: Permit, *, sample: bool = True, overloaded: bool = False
    ) -> int | None:
        """Give ``permit`` back (a second release does nothing); the limit if it was updated."""
        now = self._clock()
        with self._lock:
            if permit.released:
                return None
            permit.released = True
            self.in_flight -= 1
            if sample:
                latency = now - permit.start
                if self._count < _KEPT:
                    self._samples.append(latency)
                self._count += 1
                if latency < self._min:
                    self._min = latency
            if overloaded:
                self._dropped = True
            if now - self._window_start < self.window or (
                self._count < self.min_samples and not self._dropped
            ):
                return None
            self._update()
            self._window_start = now
            return int(self._limit)

    def _update(self) -> None:
        # Called under the lock at the end of a window.
        count = self._count
        if count:
            window_min = self._min
            noload = self._noload
            if noload is None or window_min < noload:
                noload = window_min
            else:
                noload += (window_min - noload) * _NOLOAD_DRIFT
            self._noload = noload
        limit = self._limit
        # Growing a limit that the traffic does not use would only let a burst through
        # later: grow only when at least half of it was in use.
        used = self._peak >= limit / 2
        if self.mode != "fixed" and count and self._noload is not None:
            samples = sorted(self._samples)
            median = samples[len(samples) // 2]
            ratio = self.tolerance * self._noload / median if median > 0 else 1.0
            if self.mode == "gradient":
                if ratio >= 1.0 and not self._dropped:
                    if used:
                        limit += max(1.0, math.sqrt(limit)) * _SMOOTHING * 2
                else:
                    gradient = max(_MAX_CUT, min(1.0, ratio))
                    limit = limit * (1 - _SMOOTHING) + limit * gradient * _SMOOTHING
            elif ratio < 1.0 or self._dropped:
                limit *= _BACKOFF
            elif used:
                limit += 1.0
        elif self._dropped and self.mode != "fixed":
            limit *= _BACKOFF
        self._limit = max(float(self.min_limit), min(float(self.max_limit), limit))
        self._samples = []
        self._count = 0
        self._min = math.inf
        self._peak = self.in_flight
        self._dropped = False
