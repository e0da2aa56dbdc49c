"""What the live view and the report show: traffic as the client saw it and the strategies'
events, second by second."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _events as ev
from ._wording import call_outcome, retry_reason

# Seconds whose raw latencies are kept for the live view's windows; older seconds keep
# only their percentiles, so a long run's memory stays bounded.
_RAW_SECONDS = 60


@dataclass
class Second:
    """Everything counted during one second of the run (``at`` seconds after the start)."""

    at: int
    requests: int = 0
    errors: int = 0  # 5xx answers and requests that got no answer
    slow: int = 0  # answers slower than the latency SLO's threshold
    timeouts: int = 0  # 504s: pricing did not answer in time
    latencies: list[float] = field(default_factory=list)
    percentiles: tuple[float, float, float] | None = None  # p50, p95, p99 once summarised
    upstream_calls: int = 0
    retries: dict[str, int] = field(default_factory=dict)  # by reason
    fallbacks: int = 0
    refused_by_breaker: int = 0
    refused_by_bulkhead: int = 0
    bulkhead_peak: int = 0  # the most calls in the bulkhead at once during the second

    def quantiles(self) -> tuple[float, float, float]:
        """p50, p95 and p99 of this second's latencies (seconds; zeros when none)."""
        if self.percentiles is not None:
            return self.percentiles
        values = sorted(self.latencies)
        return (quantile(values, 0.5), quantile(values, 0.95), quantile(values, 0.99))


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted ``values``; 0 when there are none."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


class DemoStats:
    """Per-second traffic figures and the state the strategies reported.

    Fed by the traffic generator (one :meth:`record` per request), by the upstream (one
    :meth:`record_upstream` per call it receives) and by a listener on the event registry;
    read by the view and the report. Everything runs on one event loop: no locks.
    """

    def __init__(
        self,
        *,
        objective: float,
        latency_threshold: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.objective = objective
        self.latency_threshold = latency_threshold
        self._clock = clock or time.monotonic
        self.seconds: list[Second] = []
        self.requests = 0
        self.errors = 0
        self.slow = 0
        self.statuses: dict[int, int] = {}
        self.breaker_state = "closed"
        self.transitions: list[tuple[float, str, str, str]] = []
        self.bulkhead_in_use = 0
        self.bulkhead_capacity = 0
        self.bulkhead_peak = 0
        self.rejections: dict[str, int] = {}
        self.retries = 0
        self.call_outcomes: dict[str, int] = {}
        self.timeouts = 0
        self.fallbacks = 0
        self.upstream_calls = 0
        self.started = self._clock()

    def start(self) -> None:
        """The traffic begins now: seconds are counted from here."""
        self.started = self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def _now(self) -> Second:
        at = int(self._clock() - self.started)
        seconds = self.seconds
        if not seconds or seconds[-1].at != at:
            seconds.append(Second(at, bulkhead_peak=self.bulkhead_in_use))
            if len(seconds) > _RAW_SECONDS:
                old = seconds[-_RAW_SECONDS - 1]
                if old.percentiles is None:
                    old.percentiles = old.quantiles()
                    old.latencies = []
        return seconds[-1]

    # --- feeding -------------------------------------------------------------------------

    def record(self, status: int, latency: float) -> None:
        """One request as the client saw it; status 0 means no response at all."""
        second = self._now()
        second.requests += 1
        second.latencies.append(latency)
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 0 or status >= 500:
            second.errors += 1
            self.errors += 1
        if status == 504:
            second.timeouts += 1
            self.timeouts += 1
        if latency > self.latency_threshold:
            second.slow += 1
            self.slow += 1

    def record_upstream(self) -> None:
        """The upstream received one call (attempts and probes included)."""
        self._now().upstream_calls += 1
        self.upstream_calls += 1

    def __call__(self, event: ev.Event) -> None:
        """The registry listener."""
        if isinstance(event, ev.BreakerTransition):
            self.breaker_state = event.new
            self.transitions.append((self.elapsed(), event.old, event.new, event.reason))
        elif isinstance(event, ev.BulkheadUsage):
            self.bulkhead_in_use, self.bulkhead_capacity = event.in_use, event.capacity
            self.bulkhead_peak = max(self.bulkhead_peak, event.in_use)
            second = self._now()
            second.bulkhead_peak = max(second.bulkhead_peak, event.in_use)
        elif isinstance(event, ev.BreakerRejected):
            self._refused("breaker")
            self._now().refused_by_breaker += 1
        elif isinstance(event, ev.BulkheadRejected):
            self._refused("bulkhead")
            self._now().refused_by_bulkhead += 1
        elif isinstance(event, ev.RateLimitRejected):
            self._refused("ratelimit")
        elif isinstance(event, ev.RetryScheduled):
            self.retries += 1
            retries = self._now().retries
            reason = retry_reason(event.error_type)
            retries[reason] = retries.get(reason, 0) + 1
        elif isinstance(event, ev.RetryFinished):
            key = call_outcome(event.outcome, event.attempts, event.error_type)
            self.call_outcomes[key] = self.call_outcomes.get(key, 0) + 1
        elif isinstance(event, ev.FallbackUsed):
            self.fallbacks += 1
            self._now().fallbacks += 1

    def _refused(self, kind: str) -> None:
        self.rejections[kind] = self.rejections.get(kind, 0) + 1

    # --- reading -------------------------------------------------------------------------

    def _window(self, seconds: int) -> list[Second]:
        # The current second is still filling up: leave it out of rates.
        newest = int(self._clock() - self.started) - 1
        found = []
        for second in reversed(self.seconds):
            if second.at <= newest - seconds:
                break
            if second.at <= newest:
                found.append(second)
        return found

    def rate(self, seconds: int = 5) -> float:
        """Requests per second over the last ``seconds`` complete seconds."""
        return sum(s.requests for s in self._window(seconds)) / seconds

    def error_ratio(self, seconds: int = 5) -> float:
        window = self._window(seconds)
        total = sum(s.requests for s in window)
        return sum(s.errors for s in window) / total if total else 0.0

    def latency_quantile(self, q: float, seconds: int = 10) -> float:
        return quantile(sorted(v for s in self._window(seconds) for v in s.latencies), q)

    def burn_rate(self, seconds: int = 30) -> float:
        """How fast the error budget burns: 1.0 spends exactly the budget over the window.

        Traffic-weighted: the errors of the window over its requests, so a quiet second
        weighs as little as it carried.
        """
        return self.error_ratio(seconds) / (1.0 - self.objective)

    def budget_left(self) -> float:
        """Share of this run's availability budget not yet spent (negative when overspent)."""
        return _budget_left(self.errors, self.requests, self.objective)

    def latency_budget_left(self) -> float:
        """The same for the latency SLO: answers slower than the threshold spend it."""
        return _budget_left(self.slow, self.requests, self.objective)


def _budget_left(bad: int, total: int, objective: float) -> float:
    if not total:
        return 1.0
    return 1.0 - bad / (total * (1.0 - objective))
