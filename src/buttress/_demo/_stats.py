"""What the live view shows: traffic as the client saw it and the strategies' events."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _events as ev


@dataclass
class _Second:
    at: int
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


class DemoStats:
    """Rolling per-second traffic figures and the state the strategies reported.

    Fed by the traffic generator (one :meth:`record` per request) and by a listener on the
    event registry; read by the view. Everything runs on one event loop: no locks.
    """

    def __init__(self, *, objective: float, clock: Callable[[], float] | None = None) -> None:
        self.objective = objective
        self._clock = clock or time.monotonic
        self._seconds: deque[_Second] = deque(maxlen=120)
        self.requests = 0
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.breaker_state = "closed"
        self.transitions: list[tuple[float, str, str, str]] = []
        self.bulkhead_in_use = 0
        self.bulkhead_capacity = 0
        self.bulkhead_peak = 0
        self.rejections: dict[str, int] = {}
        self.retries = 0
        self.retry_outcomes: dict[str, int] = {}
        self.timeouts = 0
        self.fallbacks = 0
        self.started = self._clock()

    # --- feeding -------------------------------------------------------------------------

    def record(self, status: int, latency: float) -> None:
        """One request as the client saw it; status 0 means no response at all."""
        now = int(self._clock())
        if not self._seconds or self._seconds[-1].at != now:
            self._seconds.append(_Second(now))
        second = self._seconds[-1]
        second.requests += 1
        second.latencies.append(latency)
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 0 or status >= 500:
            second.errors += 1
            self.errors += 1

    def __call__(self, event: ev.Event) -> None:
        """The registry listener."""
        if isinstance(event, ev.BreakerTransition):
            self.breaker_state = event.new
            self.transitions.append(
                (self._clock() - self.started, event.old, event.new, event.reason)
            )
        elif isinstance(event, ev.BulkheadUsage):
            self.bulkhead_in_use, self.bulkhead_capacity = event.in_use, event.capacity
            self.bulkhead_peak = max(self.bulkhead_peak, event.in_use)
        elif isinstance(event, (ev.BulkheadRejected, ev.BreakerRejected, ev.RateLimitRejected)):
            kind = type(event).__name__.removesuffix("Rejected").lower() or "rejected"
            self.rejections[kind] = self.rejections.get(kind, 0) + 1
        elif isinstance(event, ev.RetryScheduled):
            self.retries += 1
        elif isinstance(event, ev.RetryFinished):
            self.retry_outcomes[event.outcome] = self.retry_outcomes.get(event.outcome, 0) + 1
        elif isinstance(event, ev.TimeoutExpired):
            self.timeouts += 1
        elif isinstance(event, ev.FallbackUsed):
            self.fallbacks += 1

    # --- reading -------------------------------------------------------------------------

    def _window(self, seconds: int) -> list[_Second]:
        # The current second is still filling up: leave it out of rates.
        newest = int(self._clock()) - 1
        return [s for s in self._seconds if newest - seconds < s.at <= newest]

    def rate(self, seconds: int = 5) -> float:
        """Requests per second over the last ``seconds`` complete seconds."""
        return sum(s.requests for s in self._window(seconds)) / seconds

    def error_ratio(self, seconds: int = 5) -> float:
        window = self._window(seconds)
        total = sum(s.requests for s in window)
        return sum(s.errors for s in window) / total if total else 0.0

    def latency_quantile(self, q: float, seconds: int = 10) -> float:
        values = sorted(v for s in self._window(seconds) for v in s.latencies)
        if not values:
            return 0.0
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

    def burn_rate(self, seconds: int = 30) -> float:
        """How fast the error budget burns: 1.0 spends exactly the budget over the window."""
        return self.error_ratio(seconds) / (1.0 - self.objective)

    def budget_left(self) -> float:
        """Share of this run's error budget not yet spent (negative when overspent)."""
        if not self.requests:
            return 1.0
        allowed = self.requests * (1.0 - self.objective)
        return 1.0 - self.errors / allowed
