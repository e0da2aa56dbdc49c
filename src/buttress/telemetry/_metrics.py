"""Prometheus instruments for the resilience events, one set per ``CollectorRegistry``.

Labelled children are cached in dicts keyed by their label tuple: recording a metric on
the hot path is one dict look-up and one ``inc``/``set``, never a ``labels()`` call (which
takes a lock and validates its arguments every time).

In one process the counters are a small collector of our own (an int behind a lock per
child), since a retried call that succeeds at once still counts one call, on every call,
and prometheus_client's ``Counter.inc`` (checks, exemplar handling, then its own lock)
costs several times more. Under ``PROMETHEUS_MULTIPROC_DIR`` only prometheus_client's
file-backed values merge across processes, so its counters are used then.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily

from .._events import (
    AdmissionDecided,
    AdmissionLimitUpdated,
    BreakerCallRecorded,
    BreakerRejected,
    BreakerTransition,
    BulkheadRejected,
    BulkheadUsage,
    FallbackUsed,
    FaultInjected,
    HedgeSent,
    HedgeWon,
    RateLimitRejected,
    RateLimitWaited,
    RetryFinished,
    RetryScheduled,
    StoreRecovered,
    StoreUnavailable,
    ThrottleRejected,
    ThrottleUpdated,
    TimeoutExpired,
)
from . import _names as n

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .._events import Event

__all__ = ["BREAKER_STATES", "ResilienceMetrics", "current", "metrics_for", "target_registry"]

BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "forced_closed")

M = TypeVar("M", Counter, Gauge)


class _Family(Generic[M]):
    """A labelled metric and its children, cached by label tuple."""

    __slots__ = ("_children", "_metric", "is_gauge", "label_names", "metric_name")

    def __init__(self, metric: M, name: str, labels: tuple[str, ...]) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}
        # What an OpenTelemetry twin of this family needs (telemetry/_otel_metrics.py).
        self.metric_name = name
        self.label_names = labels
        self.is_gauge = isinstance(metric, Gauge)

    def child(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            # Two threads may both get here: labels() returns the same child to both.
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class _Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _CounterFamily(Protocol):
    metric_name: str
    label_names: tuple[str, ...]
    is_gauge: bool

    def child(self, *labels: str) -> _Incrementable: ...


class _LocalCount:
    """One labelled counter of this process."""

    __slots__ = ("_lock", "created", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        with self._lock:  # += on an attribute is not atomic between threads
            self.value += amount


class _LocalCounters:
    """A labelled counter for one process, registered on the registry as a collector."""

    __slots__ = (
        "__weakref__", "_children", "_doc", "_labels", "_lock", "_name", "is_gauge",
        "label_names", "metric_name",
    )  # fmt: skip

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], reg: CollectorRegistry):
        self.metric_name = name
        self.label_names = labels
        self.is_gauge = False
        self._name = name.removesuffix("_total")
        self._doc = doc
        self._labels = labels
        self._children: dict[tuple[str, ...], _LocalCount] = {}
        self._lock = threading.Lock()
        reg.register(self)

    def child(self, *labels: str) -> _LocalCount:
        child = self._children.get(labels)
        if child is None:
            with self._lock:
                child = self._children.setdefault(labels, _LocalCount())
        return child

    def describe(self) -> Iterator[CounterMetricFamily]:
        # Lets the registry refuse a second collector with the same name.
        yield CounterMetricFamily(self._name, self._doc, labels=self._labels)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for labels, child in list(self._children.items()):
            family.add_metric(list(labels), child.value, created=child.created)
        yield family


def _counter(
    name: str, doc: str, labels: tuple[str, ...], reg: CollectorRegistry | None
) -> _CounterFamily:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return _Family(Counter(name, doc, labels, registry=reg), name, labels)
    return _LocalCounters(name, doc, labels, REGISTRY if reg is None else reg)


def _gauge(
    name: str,
    doc: str,
    labels: tuple[str, ...],
    reg: CollectorRegistry | None,
    mode: Literal["livesum", "livemax"],
) -> _Family[Gauge]:
    # multiprocess_mode only matters with PROMETHEUS_MULTIPROC_DIR; see docs/metrics.md.
    return _Family(Gauge(name, doc, labels, registry=reg, multiprocess_mode=mode), name, labels)


class ResilienceMetrics:
    """Every ``buttress_*`` instrument, registered on one registry, and the event mapping."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        p, e, o = n.LABEL_POLICY, n.LABEL_ERROR_TYPE, n.LABEL_OUTCOME
        r = registry
        self.retry_attempts: _CounterFamily = _counter(
            n.RETRY_ATTEMPTS, "Failed attempts that will be retried.", (p, e), r
        )
        self.retry_calls: _CounterFamily = _counter(
            n.RETRY_CALLS, "Retried calls that ended, by outcome.", (p, o), r
        )
        self.breaker_state: _Family[Gauge] = _gauge(
            n.BREAKER_STATE, "1 for the breaker's current state.", (p, n.LABEL_STATE), r, "livemax"
        )
        self.breaker_transitions: _CounterFamily = _counter(
            n.BREAKER_TRANSITIONS,
            "Circuit breaker state changes.",
            (p, n.LABEL_FROM_STATE, n.LABEL_TO_STATE),
            r,
        )
        self.breaker_rejections: _CounterFamily = _counter(
            n.BREAKER_REJECTIONS, "Calls refused by an open breaker.", (p,), r
        )
        self.breaker_calls: _CounterFamily = _counter(
            n.BREAKER_CALLS, "Calls counted by a breaker, by outcome.", (p, o), r
        )
        self.bulkhead_in_use: _Family[Gauge] = _gauge(
            n.BULKHEAD_IN_USE, "Bulkhead slots taken.", (p,), r, "livesum"
        )
        self.bulkhead_waiting: _Family[Gauge] = _gauge(
            n.BULKHEAD_WAITING, "Calls waiting for a bulkhead slot.", (p,), r, "livesum"
        )
        self.bulkhead_capacity: _Family[Gauge] = _gauge(
            n.BULKHEAD_CAPACITY, "Bulkhead slots.", (p,), r, "livesum"
        )
        self.bulkhead_rejections: _CounterFamily = _counter(
            n.BULKHEAD_REJECTIONS, "Calls refused by a bulkhead.", (p, n.LABEL_REASON), r
        )
        self.rate_limiter_rejections: _CounterFamily = _counter(
            n.RATE_LIMITER_REJECTIONS, "Calls refused by a rate limiter.", (p,), r
        )
        self.rate_limiter_waits: _CounterFamily = _counter(
            n.RATE_LIMITER_WAITS, "Calls that waited for a rate limiter token.", (p,), r
        )
        self.timeouts: _CounterFamily = _counter(
            n.TIMEOUTS, "Calls that ran past their timeout.", (p,), r
        )
        self.fallbacks: _CounterFamily = _counter(
            n.FALLBACKS, "Calls answered by a fallback.", (p, e), r
        )
        self.store_errors: _CounterFamily = _counter(
            n.STORE_ERRORS, "Failures of the shared state store.", (p, n.LABEL_STORE, e), r
        )
        self.store_degraded: _Family[Gauge] = _gauge(
            n.STORE_DEGRADED,
            "1 while a policy decides locally because its store failed.",
            (p, n.LABEL_STORE),
            r,
            "livemax",
        )
        self.faults_injected: _CounterFamily = _counter(
            n.FAULTS_INJECTED, "Faults injected on purpose.", (p, n.LABEL_KIND), r
        )
        self.hedges_sent: _CounterFamily = _counter(
            n.HEDGES_SENT, "Hedged attempts sent because no answer came in time.", (p,), r
        )
        self.hedges_won: _CounterFamily = _counter(
            n.HEDGES_WON, "Calls a hedged attempt answered first.", (p,), r
        )
        self.throttle_rejections: _CounterFamily = _counter(
            n.THROTTLE_REJECTIONS, "Calls adaptive throttling refused locally.", (p,), r
        )
        self.throttle_acceptance: _Family[Gauge] = _gauge(
            n.THROTTLE_ACCEPTANCE,
            "Share of recent requests the dependency accepted (1 with none).",
            (p,),
            r,
            "livemax",
        )
        self.admission_requests: _CounterFamily = _counter(
            n.ADMISSION_REQUESTS,
            "Inbound requests decided by admission control, by outcome and criticality.",
            (p, o, n.LABEL_CRITICALITY),
            r,
        )
        self.admission_limit: _Family[Gauge] = _gauge(
            n.ADMISSION_LIMIT,
            "The concurrency limit of inbound requests, as of its last update.",
            (p,),
            r,
            "livesum",
        )
        self.admission_in_flight: _Family[Gauge] = _gauge(
            n.ADMISSION_IN_FLIGHT,
            "Inbound requests in flight at the concurrency limit's last update.",
            (p,),
            r,
            "livesum",
        )

    def record(self, event: Event) -> None:
        """Update the instruments ``event`` maps to (events of unknown types are ignored)."""
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)


def _retry_scheduled(m: ResilienceMetrics, e: RetryScheduled) -> None:
    m.retry_attempts.child(e.name, e.error_type).inc()


def _retry_finished(m: ResilienceMetrics, e: RetryFinished) -> None:
    m.retry_calls.child(e.name, e.outcome).inc()


def _breaker_transition(m: ResilienceMetrics, e: BreakerTransition) -> None:
    # Every state gets a series, so "which state is it in" never has holes.
    for state in BREAKER_STATES:
        m.breaker_state.child(e.name, state).set(1 if state == e.new else 0)
    m.breaker_transitions.child(e.name, e.old, e.new).inc()


def _breaker_rejected(m: ResilienceMetrics, e: BreakerRejected) -> None:
    m.breaker_rejections.child(e.name).inc()


def _breaker_call(m: ResilienceMetrics, e: BreakerCallRecorded) -> None:
    m.breaker_calls.child(e.name, e.outcome).inc()


def _bulkhead_usage(m: ResilienceMetrics, e: BulkheadUsage) -> None:
    m.bulkhead_in_use.child(e.name).set(e.in_use)
    m.bulkhead_waiting.child(e.name).set(e.waiting)
    m.bulkhead_capacity.child(e.name).set(e.capacity)


def _bulkhead_rejected(m: ResilienceMetrics, e: BulkheadRejected) -> None:
    m.bulkhead_rejections.child(e.name, e.reason).inc()


def _rate_limit_rejected(m: ResilienceMetrics, e: RateLimitRejected) -> None:
    m.rate_limiter_rejections.child(e.name).inc()


def _rate_limit_waited(m: ResilienceMetrics, e: RateLimitWaited) -> None:
    m.rate_limiter_waits.child(e.name).inc()


def _timeout(m: ResilienceMetrics, e: TimeoutExpired) -> None:
    m.timeouts.child(e.name).inc()


def _fallback(m: ResilienceMetrics, e: FallbackUsed) -> None:
    m.fallbacks.child(e.name, e.error_type).inc()


def _store_unavailable(m: ResilienceMetrics, e: StoreUnavailable) -> None:
    m.store_errors.child(e.name, e.store, e.error_type).inc()
    m.store_degraded.child(e.name, e.store).set(1)


def _store_recovered(m: ResilienceMetrics, e: StoreRecovered) -> None:
    m.store_degraded.child(e.name, e.store).set(0)


def _fault(m: ResilienceMetrics, e: FaultInjected) -> None:
    m.faults_injected.child(e.name, e.kind).inc()


def _hedge_sent(m: ResilienceMetrics, e: HedgeSent) -> None:
    m.hedges_sent.child(e.name).inc()


def _hedge_won(m: ResilienceMetrics, e: HedgeWon) -> None:
    m.hedges_won.child(e.name).inc()


def _throttle_rejected(m: ResilienceMetrics, e: ThrottleRejected) -> None:
    m.throttle_rejections.child(e.name).inc()


def _throttle_updated(m: ResilienceMetrics, e: ThrottleUpdated) -> None:
    m.throttle_acceptance.child(e.name).set(e.acceptance)


def _admission(m: ResilienceMetrics, e: AdmissionDecided) -> None:
    m.admission_requests.child(e.name, e.outcome, e.criticality).inc()


def _admission_limit(m: ResilienceMetrics, e: AdmissionLimitUpdated) -> None:
    m.admission_limit.child(e.name).set(e.limit)
    m.admission_in_flight.child(e.name).set(e.in_flight)


HANDLERS: dict[type, Callable[[ResilienceMetrics, Any], None]] = {
    RetryScheduled: _retry_scheduled,
    RetryFinished: _retry_finished,
    BreakerTransition: _breaker_transition,
    BreakerRejected: _breaker_rejected,
    BreakerCallRecorded: _breaker_call,
    BulkheadUsage: _bulkhead_usage,
    BulkheadRejected: _bulkhead_rejected,
    RateLimitRejected: _rate_limit_rejected,
    RateLimitWaited: _rate_limit_waited,
    TimeoutExpired: _timeout,
    FallbackUsed: _fallback,
    StoreUnavailable: _store_unavailable,
    StoreRecovered: _store_recovered,
    FaultInjected: _fault,
    HedgeSent: _hedge_sent,
    HedgeWon: _hedge_won,
    ThrottleRejected: _throttle_rejected,
    ThrottleUpdated: _throttle_updated,
    AdmissionDecided: _admission,
    AdmissionLimitUpdated: _admission_limit,
}

# For events emitted again and again (Registry.emit_prebuilt): the one increment the
# handler would make, found once, as a bound method of the labelled child.
INCREMENTS: dict[type, Callable[[ResilienceMetrics, Any], Callable[[], None]]] = {
    RetryFinished: lambda m, e: m.retry_calls.child(e.name, e.outcome).inc,
    BreakerCallRecorded: lambda m, e: m.breaker_calls.child(e.name, e.outcome).inc,
    BreakerRejected: lambda m, e: m.breaker_rejections.child(e.name).inc,
}

T = TypeVar("T")


class PerRegistry(Generic[T]):
    """One instrument set per registry, made on first use and kept while the registry lives.

    Registering the same names twice on one registry raises "Duplicated timeseries", so
    every user of a registry must share one set: the first look-up makes it under a lock.
    """

    __slots__ = ("_lock", "_make", "_sets")

    def __init__(self, make: Callable[[CollectorRegistry], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._sets: weakref.WeakKeyDictionary[CollectorRegistry, T] = weakref.WeakKeyDictionary()

    def get(self, registry: CollectorRegistry) -> T:
        made = self._sets.get(registry)
        if made is None:
            with self._lock:
                made = self._sets.get(registry)
                if made is None:
                    made = self._sets[registry] = self._make(registry)
        return made


_resilience = PerRegistry(ResilienceMetrics)
_target: CollectorRegistry = REGISTRY
_current: ResilienceMetrics | None = None


def metrics_for(registry: CollectorRegistry) -> ResilienceMetrics:
    """The instruments on ``registry``, registered there on first use."""
    return _resilience.get(registry)


def target_registry() -> CollectorRegistry:
    """The registry buttress records into: ``prometheus_client.REGISTRY`` unless configured."""
    return _target


def set_target_registry(registry: CollectorRegistry) -> None:
    """Record into ``registry`` from now on (called by ``configure``)."""
    global _target, _current
    _target = registry
    _current = None


def current() -> ResilienceMetrics:
    """The instruments on the target registry (one global read once they exist)."""
    global _current
    metrics = _current
    if metrics is None:
        from ._otel_metrics import resilience  # OpenTelemetry too, when configure() chose it

        metrics = _current = resilience(metrics_for(_target))
    return metrics
