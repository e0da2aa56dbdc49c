"""The resilience dashboard: retries, breakers, bulkheads, rate limits, timeouts, fallbacks."""

from __future__ import annotations

from typing import Any, Final

from ..telemetry import _names as n
from ._grafana import RATE, Panel, dashboard, datasource_variable, query_variable, selector
from ._grafana import variable_matcher as var

UID: Final = "buttress-resilience"

# Every buttress_* metric: the job, instance and policy lists come from whichever exist.
_ALL: Final = (
    n.RETRY_ATTEMPTS,
    n.RETRY_CALLS,
    n.BREAKER_STATE,
    n.BREAKER_TRANSITIONS,
    n.BREAKER_REJECTIONS,
    n.BREAKER_CALLS,
    n.BULKHEAD_IN_USE,
    n.BULKHEAD_WAITING,
    n.BULKHEAD_CAPACITY,
    n.BULKHEAD_REJECTIONS,
    n.RATE_LIMITER_REJECTIONS,
    n.RATE_LIMITER_WAITS,
    n.TIMEOUTS,
    n.FALLBACKS,
    n.STORE_ERRORS,
    n.STORE_DEGRADED,
    n.FAULTS_INJECTED,
    n.HEDGES_SENT,
    n.HEDGES_WON,
    n.THROTTLE_REJECTIONS,
    n.THROTTLE_ACCEPTANCE,
    n.ADMISSION_REQUESTS,
    n.ADMISSION_LIMIT,
    n.ADMISSION_IN_FLIGHT,
)


def _series(metric: str, *extra: tuple[str, str, str]) -> str:
    return metric + selector(
        var(n.LABEL_JOB, "job"),
        var(n.LABEL_INSTANCE, "instance"),
        var(n.LABEL_POLICY, "policy"),
        *extra,
    )


def _rate(metric: str, *by: str) -> str:
    return f"sum by ({', '.join(by)}) (rate({_series(metric)}[{RATE}]))"


def _legend(*labels: str) -> str:
    return " ".join(f"{{{{{label}}}}}" for label in labels)


def build() -> dict[str, Any]:
    p, o, e = n.LABEL_POLICY, n.LABEL_OUTCOME, n.LABEL_ERROR_TYPE
    retries = [
        Panel(
            "timeseries",
            "Retries by error type",
            "Failed attempts that were retried, per second.",
            [(_rate(n.RETRY_ATTEMPTS, p, e), _legend(p, e))],
            "ops",
            width=8,
        ),
        Panel(
            "timeseries",
            "Retried calls by outcome",
            "Calls that went through a retry, by how they ended: success, exhausted, "
            "deadline, budget (the retry budget refused), not_retryable.",
            [(_rate(n.RETRY_CALLS, p, o), _legend(p, o))],
            "ops",
            width=8,
            stack=True,
        ),
        Panel(
            "timeseries",
            "Retry budget refusals",
            "Share of retried calls that ended because the retry budget refused a retry.",
            [
                (
                    f"sum by ({p}) (rate({_series(n.RETRY_CALLS, (o, '=', 'budget'))}[{RATE}]))\n"
                    f"/\n{_rate(n.RETRY_CALLS, p)}",
                    _legend(p),
                )
            ],
            "percentunit",
            width=8,
            thresholds=[("green", None), ("orange", 0.05)],
        ),
    ]
    state = f"max by ({p}, {n.LABEL_STATE}) ({_series(n.BREAKER_STATE)}) > 0"
    transitions = (
        f"sum by ({p}, {n.LABEL_FROM_STATE}, {n.LABEL_TO_STATE}) "
        f"(increase({_series(n.BREAKER_TRANSITIONS)}[{RATE}]))"
    )
    breakers = [
        Panel(
            "timeseries",
            "Breaker state",
            "The state each breaker is in (1 while in it).",
            [(state, _legend(p, n.LABEL_STATE))],
            "short",
            width=6,
            stepped=True,
            maximum=1,
        ),
        Panel(
            "timeseries",
            "Breaker transitions",
            "State changes per interval.",
            [
                (
                    transitions,
                    f"{_legend(p)} {_legend(n.LABEL_FROM_STATE)} → {_legend(n.LABEL_TO_STATE)}",
                )
            ],
            "short",
            width=6,
        ),
        Panel(
            "timeseries",
            "Breaker rejections",
            "Calls refused by an open breaker, per second.",
            [(_rate(n.BREAKER_REJECTIONS, p), _legend(p))],
            "ops",
            width=6,
            thresholds=[("green", None), ("red", 1.0)],
        ),
        Panel(
            "timeseries",
            "Breaker calls by outcome",
            "Calls a breaker counted: success, failure, ignored.",
            [(_rate(n.BREAKER_CALLS, p, o), _legend(p, o))],
            "ops",
            width=6,
            stack=True,
        ),
    ]
    saturation = (
        f"max by ({p}) ({_series(n.BULKHEAD_IN_USE)})\n/ on ({p})\n"
        f"max by ({p}) ({_series(n.BULKHEAD_CAPACITY)})"
    )
    bulkheads = [
        Panel(
            "timeseries",
            "Bulkhead saturation",
            "Slots in use over capacity.",
            [(saturation, _legend(p))],
            "percentunit",
            width=8,
            maximum=1,
            thresholds=[("green", None), ("orange", 0.8), ("red", 0.95)],
        ),
        Panel(
            "timeseries",
            "Bulkhead queue",
            "Calls waiting for a slot.",
            [(f"max by ({p}) ({_series(n.BULKHEAD_WAITING)})", _legend(p))],
            "short",
            width=8,
        ),
        Panel(
            "timeseries",
            "Bulkhead rejections",
            "Calls refused: full, or waited too long.",
            [(_rate(n.BULKHEAD_REJECTIONS, p, n.LABEL_REASON), _legend(p, n.LABEL_REASON))],
            "ops",
            width=8,
            thresholds=[("green", None), ("red", 1.0)],
        ),
    ]
    limits = [
        Panel(
            "timeseries",
            "Rate limiter rejections",
            "Calls refused for want of a token.",
            [(_rate(n.RATE_LIMITER_REJECTIONS, p), _legend(p))],
            "ops",
            width=6,
        ),
        Panel(
            "timeseries",
            "Rate limiter waits",
            "Calls that waited for a token.",
            [(_rate(n.RATE_LIMITER_WAITS, p), _legend(p))],
            "ops",
            width=6,
        ),
        Panel(
            "timeseries",
            "Timeouts",
            "Calls that ran past their timeout, per second.",
            [(_rate(n.TIMEOUTS, p), _legend(p))],
            "ops",
            width=6,
            thresholds=[("green", None), ("red", 1.0)],
        ),
        Panel(
            "timeseries",
            "Fallbacks",
            "Calls answered by a fallback, by the error it hid.",
            [(_rate(n.FALLBACKS, p, e), _legend(p, e))],
            "ops",
            width=6,
        ),
    ]
    store = [
        Panel(
            "timeseries",
            "Shared store degraded",
            "1 while a policy decides on local state because its store (Redis) failed.",
            [
                (
                    f"max by ({p}, {n.LABEL_STORE}) ({_series(n.STORE_DEGRADED)})",
                    _legend(p, n.LABEL_STORE),
                )
            ],
            "short",
            width=8,
            stepped=True,
            maximum=1,
            thresholds=[("green", None), ("red", 1.0)],
        ),
        Panel(
            "timeseries",
            "Shared store errors",
            "Failures of the shared state store.",
            [(_rate(n.STORE_ERRORS, p, n.LABEL_STORE, e), _legend(p, n.LABEL_STORE, e))],
            "ops",
            width=8,
        ),
        Panel(
            "timeseries",
            "Faults injected",
            "Faults injected on purpose, by kind.",
            [(_rate(n.FAULTS_INJECTED, p, n.LABEL_KIND), _legend(p, n.LABEL_KIND))],
            "ops",
            width=8,
        ),
    ]
    refused = _series(n.ADMISSION_REQUESTS, (o, "!=", "admitted"))
    admission = [
        Panel(
            "timeseries",
            "Inbound admission decisions",
            "Requests the middleware's admission control admitted or refused, per second: "
            "shed (503, over the concurrency limit), rate_limited (429), deadline (504).",
            [(_rate(n.ADMISSION_REQUESTS, p, o), _legend(p, o))],
            "ops",
            width=8,
            stack=True,
        ),
        Panel(
            "timeseries",
            "Inbound requests refused",
            "Share of inbound requests refused by admission control, by criticality: "
            "sheddable requests go first, critical ones last.",
            [
                (
                    f"sum by ({p}, {n.LABEL_CRITICALITY}) (rate({refused}[{RATE}]))\n"
                    f"/ on ({p}) group_left\n{_rate(n.ADMISSION_REQUESTS, p)}",
                    _legend(p, n.LABEL_CRITICALITY),
                )
            ],
            "percentunit",
            width=8,
            thresholds=[("green", None), ("orange", 0.01), ("red", 0.1)],
        ),
        Panel(
            "timeseries",
            "Concurrency limit and in flight",
            "The adaptive concurrency limit the service found from its own latency, and the "
            "requests in flight at its last update.",
            [
                (f"max by ({p}) ({_series(n.ADMISSION_LIMIT)})", f"{_legend(p)} limit"),
                (f"max by ({p}) ({_series(n.ADMISSION_IN_FLIGHT)})", f"{_legend(p)} in flight"),
            ],
            "short",
            width=8,
        ),
    ]
    tails = [
        Panel(
            "timeseries",
            "Hedges sent and won",
            "Hedged attempts sent because the first had not answered within the hedging "
            "delay, and calls a hedge answered first, per second.",
            [
                (_rate(n.HEDGES_SENT, p), f"{_legend(p)} sent"),
                (_rate(n.HEDGES_WON, p), f"{_legend(p)} won"),
            ],
            "ops",
            width=8,
        ),
        Panel(
            "timeseries",
            "Adaptive throttling refusals",
            "Calls refused locally because the dependency refused most recent requests.",
            [(_rate(n.THROTTLE_REJECTIONS, p), _legend(p))],
            "ops",
            width=8,
            thresholds=[("green", None), ("red", 1.0)],
        ),
        Panel(
            "timeseries",
            "Dependency acceptance ratio",
            "Share of recent requests each throttled dependency accepted (1 with none): "
            "throttling starts as it falls below 1/k.",
            [(f"min by ({p}) ({_series(n.THROTTLE_ACCEPTANCE)})", _legend(p))],
            "percentunit",
            width=8,
            maximum=1,
            thresholds=[("red", None), ("orange", 0.5), ("green", 0.9)],
        ),
    ]
    any_metric = "{__name__=~" + '"' + "|".join(_ALL) + '"}'
    scoped = "{__name__=~" + '"' + "|".join(_ALL) + '",job=~"$job"}'
    scoped_more = "{__name__=~" + '"' + "|".join(_ALL) + '",job=~"$job",instance=~"$instance"}'
    return dashboard(
        uid=UID,
        title="buttress / Resilience",
        description="Retries and retry budget, circuit breakers, bulkheads, rate limiters, "
        "timeouts, fallbacks, hedging, adaptive throttling and shared state stores of "
        "buttress policies, and the admission control of inbound requests.",
        variables=[
            datasource_variable(),
            query_variable("job", n.LABEL_JOB, any_metric, title="Job"),
            query_variable("instance", n.LABEL_INSTANCE, scoped, title="Instance"),
            query_variable("policy", n.LABEL_POLICY, scoped_more, title="Policy"),
        ],
        rows=[
            ("Retries", retries),
            ("Circuit breakers", breakers),
            ("Bulkheads", bulkheads),
            ("Rate limiters, timeouts, fallbacks", limits),
            ("Hedging and adaptive throttling", tails),
            ("Shared state and fault injection", store),
            ("Inbound admission", admission),
        ],
    )
