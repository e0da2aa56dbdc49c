"""The run as a series of one-second samples, gaps filled: what the charts and sparklines draw.

Burn rates and budgets are computed here from the demo's own counts, the way the SLO rules
compute them from Prometheus counters: traffic-weighted (errors of a window over its
requests), never an average of per-second ratios.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._stats import Second

if TYPE_CHECKING:
    from ._stats import DemoStats

# The demo's short stand-ins for the rules' 5m and 1h windows: a minute-long run has to
# show a fast and a slow burn.
SHORT_WINDOW = 5
LONG_WINDOW = 30
PAGE_BURN_RATE = 14.4  # the workbook's fast-burn page threshold


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of the run; latencies in seconds, burn rates as multiples of the budget."""

    at: int
    requests: int
    errors: int
    slow: int
    timeouts: int
    p50: float
    p95: float
    p99: float
    upstream_calls: int
    retries: Mapping[str, int]
    fallbacks: int
    refused_by_breaker: int
    refused_by_bulkhead: int
    bulkhead_peak: int
    breaker_state: str
    burn_short: float
    burn_long: float
    latency_burn_long: float
    budget_left: float
    latency_budget_left: float

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def timeline(
    stats: DemoStats, *, until: float | None = None, last: int | None = None
) -> list[Sample]:
    """One sample per complete second up to ``until`` seconds (default: now); only the
    ``last`` seconds when given (the budgets still count from the start)."""
    end = int(stats.elapsed() if until is None else until)
    by_second = {s.at: s for s in stats.seconds if s.at < end}
    seconds = [by_second.get(at) or Second(at) for at in range(end)]
    budget = 1.0 - stats.objective
    change_at = [at for at, *_ in stats.transitions]
    samples: list[Sample] = []
    requests = errors = slow = 0
    first = 0 if last is None else max(0, end - last)
    for i, second in enumerate(seconds):
        requests += second.requests
        errors += second.errors
        slow += second.slow
        if i < first:
            continue
        p50, p95, p99 = second.quantiles()
        samples.append(
            Sample(
                at=second.at,
                requests=second.requests,
                errors=second.errors,
                slow=second.slow,
                timeouts=second.timeouts,
                p50=p50,
                p95=p95,
                p99=p99,
                upstream_calls=second.upstream_calls,
                retries=dict(second.retries),
                fallbacks=second.fallbacks,
                refused_by_breaker=second.refused_by_breaker,
                refused_by_bulkhead=second.refused_by_bulkhead,
                bulkhead_peak=second.bulkhead_peak,
                breaker_state=_state_at(stats, change_at, second.at + 1),
                burn_short=_ratio(seconds, i, SHORT_WINDOW, "errors") / budget,
                burn_long=_ratio(seconds, i, LONG_WINDOW, "errors") / budget,
                latency_burn_long=_ratio(seconds, i, LONG_WINDOW, "slow") / budget,
                budget_left=_left(errors, requests, budget),
                latency_budget_left=_left(slow, requests, budget),
            )
        )
    return samples


def _ratio(seconds: list[Second], i: int, window: int, what: str) -> float:
    chosen = seconds[max(0, i - window + 1) : i + 1]
    total = sum(s.requests for s in chosen)
    bad = sum(getattr(s, what) for s in chosen)
    return bad / total if total else 0.0


def _left(bad: int, total: int, budget: float) -> float:
    return 1.0 - bad / (total * budget) if total else 1.0


def _state_at(stats: DemoStats, change_at: list[float], at: float) -> str:
    """The breaker's state at ``at`` seconds: the last transition before it decides."""
    i = bisect.bisect_left(change_at, at)
    return stats.transitions[i - 1][2] if i else "closed"
