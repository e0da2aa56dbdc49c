"""The default listeners: every resilience event as a metric, a span event and a log event.

The event registry loads :func:`default_listeners` on its first emission. Each listener
is a small callable that dispatches on the event's type with one dict look-up, does no
I/O of its own and never raises (the registry would log and skip it, but a listener that
fails on every call would flood the log).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias

from opentelemetry import trace

from .._events import (
    AdmissionDecided,
    AdmissionLimitUpdated,
    BreakerRejected,
    BreakerTransition,
    BulkheadRejected,
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
    TimeoutExpired,
)
from . import _metrics
from . import _names as n

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from .._events import Event, Listener

__all__ = ["LogListener", "PrometheusListener", "SpanListener", "default_listeners"]

_log = logging.getLogger("buttress")
# Library-polite: without this, Python's last-resort handler would print our warnings to
# stderr in applications that never configured logging.
if not any(isinstance(h, logging.NullHandler) for h in _log.handlers):
    _log.addHandler(logging.NullHandler())

Fields: TypeAlias = dict[str, Any]


class PrometheusListener:
    """Records events into the ``buttress_*`` metrics of ``registry``.

    Without a registry it follows the one :func:`buttress.configure` chose
    (``prometheus_client.REGISTRY`` by default).
    """

    __slots__ = ("_metrics",)

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._metrics = _metrics.metrics_for(registry) if registry is not None else None

    @property
    def follows_target(self) -> bool:
        """Whether it records into the registry ``configure`` chose (it was given none)."""
        return self._metrics is None

    def __call__(self, event: Event, /) -> None:
        # Inlined dispatch: this runs on every decorated call that succeeds at once.
        handler = _metrics.HANDLERS.get(type(event))
        if handler is not None:
            handler(self._metrics or _metrics.current(), event)

    def prepare(self, event: Event, /) -> Callable[[], object] | None:
        """What recording ``event`` takes, found once for an event emitted again and again."""
        kind = type(event)
        handler = _metrics.HANDLERS.get(kind)
        if handler is None:
            return None
        increment = _metrics.INCREMENTS.get(kind)
        fixed = self._metrics
        if fixed is not None:
            if increment is not None:
                return increment(fixed, event)
            return partial(handler, fixed, event)
        # Following the registry configure() chose: found again when that changes.
        found: list[Any] = [None, None]

        def record() -> None:
            metrics = _metrics.current()
            if metrics is not found[0]:
                action = increment(metrics, event) if increment is not None else None
                found[0], found[1] = metrics, action
            if found[1] is not None:
                found[1]()
            else:
                handler(metrics, event)

        return record


# --- what each event says, as (name, fields) -------------------------------------------------
# One function per event type, shared by spans and logs so both say the same thing.


def _retry_scheduled(e: RetryScheduled) -> tuple[int, str, Fields]:
    fields = {
        n.LABEL_POLICY: e.name,
        n.LOG_KEY_ATTEMPT: e.attempt,
        n.LOG_KEY_WAIT: e.wait,
        n.LABEL_ERROR_TYPE: e.error_type,
    }
    return logging.INFO, n.EVENT_RETRY_SCHEDULED, fields


def _retry_finished(e: RetryFinished) -> tuple[int, str, Fields]:
    level = logging.DEBUG if e.outcome == "success" else logging.WARNING
    fields = {
        n.LABEL_POLICY: e.name,
        n.LOG_KEY_ATTEMPTS: e.attempts,
        n.LABEL_OUTCOME: e.outcome,
        n.LABEL_ERROR_TYPE: e.error_type,
    }
    return level, n.EVENT_RETRY_FINISHED, fields


def _breaker_transition(e: BreakerTransition) -> tuple[int, str, Fields]:
    level = logging.WARNING if e.new in ("open", "forced_open") else logging.INFO
    fields = {
        n.LABEL_POLICY: e.name,
        n.LABEL_FROM_STATE: e.old,
        n.LABEL_TO_STATE: e.new,
        n.LABEL_REASON: e.reason,
    }
    return level, n.EVENT_BREAKER_TRANSITION, fields


def _breaker_rejected(e: BreakerRejected) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_STATE: e.state}
    return logging.DEBUG, n.EVENT_BREAKER_REJECTED, fields


def _bulkhead_rejected(e: BulkheadRejected) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_REASON: e.reason}
    return logging.INFO, n.EVENT_BULKHEAD_REJECTED, fields


def _rate_limit_rejected(e: RateLimitRejected) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_RETRY_AFTER: e.retry_after}
    return logging.INFO, n.EVENT_RATE_LIMITED, fields


def _rate_limit_waited(e: RateLimitWaited) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_WAIT: e.wait}
    return logging.DEBUG, n.EVENT_RATE_LIMIT_WAITED, fields


def _timeout(e: TimeoutExpired) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_TIMEOUT: e.timeout}
    return logging.WARNING, n.EVENT_TIMEOUT, fields


def _fallback(e: FallbackUsed) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_ERROR_TYPE: e.error_type}
    return logging.INFO, n.EVENT_FALLBACK, fields


def _store_unavailable(e: StoreUnavailable) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_STORE: e.store, n.LABEL_ERROR_TYPE: e.error_type}
    return logging.WARNING, n.EVENT_STORE_UNAVAILABLE, fields


def _store_recovered(e: StoreRecovered) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_STORE: e.store}
    return logging.INFO, n.EVENT_STORE_RECOVERED, fields


def _fault(e: FaultInjected) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LABEL_KIND: e.kind}
    return logging.DEBUG, n.EVENT_FAULT_INJECTED, fields


def _hedge_sent(e: HedgeSent) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_HEDGE_ATTEMPT: e.attempt, n.LOG_KEY_DELAY: e.delay}
    return logging.DEBUG, n.EVENT_HEDGE_SENT, fields


def _hedge_won(e: HedgeWon) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_HEDGE_ATTEMPT: e.attempt}
    return logging.DEBUG, n.EVENT_HEDGE_WON, fields


def _throttle_rejected(e: ThrottleRejected) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_PROBABILITY: e.probability}
    return logging.DEBUG, n.EVENT_THROTTLE_REJECTED, fields


def _admission(e: AdmissionDecided) -> tuple[int, str, Fields]:
    level = logging.DEBUG if e.outcome == "admitted" else logging.INFO
    fields = {
        n.LABEL_POLICY: e.name,
        n.LABEL_OUTCOME: e.outcome,
        n.LABEL_CRITICALITY: e.criticality,
        n.LOG_KEY_RATE_LIMIT: e.rule,
    }
    return level, n.EVENT_ADMISSION, fields


def _admission_limit(e: AdmissionLimitUpdated) -> tuple[int, str, Fields]:
    fields = {n.LABEL_POLICY: e.name, n.LOG_KEY_LIMIT: e.limit, n.LOG_KEY_IN_FLIGHT: e.in_flight}
    return logging.DEBUG, n.EVENT_ADMISSION_LIMIT, fields


# BreakerCallRecorded, BulkheadUsage and ThrottleUpdated happen on every call: metrics only.
_DESCRIBE: dict[type, Callable[[Any], tuple[int, str, Fields]]] = {
    RetryScheduled: _retry_scheduled,
    RetryFinished: _retry_finished,
    BreakerTransition: _breaker_transition,
    BreakerRejected: _breaker_rejected,
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
    AdmissionDecided: _admission,
    AdmissionLimitUpdated: _admission_limit,
}

# The lowest level each event type logs at: below it, a disabled logger costs one check.
_MIN_LEVEL: dict[type, int] = {
    RetryScheduled: logging.INFO,
    RetryFinished: logging.DEBUG,
    BreakerTransition: logging.INFO,
    BreakerRejected: logging.DEBUG,
    BulkheadRejected: logging.INFO,
    RateLimitRejected: logging.INFO,
    RateLimitWaited: logging.DEBUG,
    TimeoutExpired: logging.WARNING,
    FallbackUsed: logging.INFO,
    StoreUnavailable: logging.WARNING,
    StoreRecovered: logging.INFO,
    FaultInjected: logging.DEBUG,
    HedgeSent: logging.DEBUG,
    HedgeWon: logging.DEBUG,
    ThrottleRejected: logging.DEBUG,
    AdmissionDecided: logging.DEBUG,
    AdmissionLimitUpdated: logging.DEBUG,
}

# Log field -> span attribute. Fields not listed keep their name.
_SPAN_KEYS = {
    n.LABEL_POLICY: n.ATTR_POLICY,
    n.LABEL_ERROR_TYPE: n.ATTR_ERROR_TYPE,
    n.LABEL_OUTCOME: n.ATTR_OUTCOME,
    n.LOG_KEY_ATTEMPT: n.ATTR_RETRY_ATTEMPT,
    n.LOG_KEY_ATTEMPTS: n.ATTR_RETRY_ATTEMPT,
    n.LOG_KEY_WAIT: n.ATTR_RETRY_WAIT,
    n.LABEL_STATE: n.ATTR_BREAKER_STATE,
    n.LABEL_FROM_STATE: n.ATTR_BREAKER_FROM_STATE,
    n.LABEL_TO_STATE: n.ATTR_BREAKER_TO_STATE,
    n.LABEL_REASON: n.ATTR_REASON,
    n.LOG_KEY_RETRY_AFTER: n.ATTR_RETRY_AFTER,
    n.LOG_KEY_TIMEOUT: n.ATTR_TIMEOUT,
    n.LABEL_STORE: n.ATTR_STORE,
    n.LABEL_KIND: n.ATTR_FAULT_KIND,
    n.LOG_KEY_HEDGE_ATTEMPT: n.ATTR_HEDGE_ATTEMPT,
    n.LOG_KEY_DELAY: n.ATTR_HEDGE_DELAY,
    n.LOG_KEY_PROBABILITY: n.ATTR_THROTTLE_PROBABILITY,
    n.LABEL_CRITICALITY: n.ATTR_ADMISSION_CRITICALITY,
    n.LOG_KEY_RATE_LIMIT: n.ATTR_RATE_LIMIT,
    n.LOG_KEY_LIMIT: n.ATTR_ADMISSION_LIMIT,
    n.LOG_KEY_IN_FLIGHT: n.ATTR_ADMISSION_IN_FLIGHT,
}


class SpanListener:
    """Adds each event as a span event on the current span, when that span records."""

    __slots__ = ()

    def __call__(self, event: Event, /) -> None:
        describe = _DESCRIBE.get(type(event))
        if describe is None or _routine(event):
            return
        span = trace.get_current_span()
        if not span.is_recording():
            return
        _, name, fields = describe(event)
        # An empty error type (a retried call that succeeded) is not an error.
        span.add_event(name, {_SPAN_KEYS[k]: v for k, v in fields.items() if v != ""})

    def prepare(self, event: Event, /) -> Callable[[], object] | None:
        """Nothing to do for an event that never makes a span event; else the call."""
        if type(event) not in _DESCRIBE or _routine(event):
            return None
        return partial(self, event)


def _routine(event: Event) -> bool:
    # A call that succeeded at its first attempt says nothing a span event would add; it
    # happens on nearly every call, and a span event costs more than the call. Likewise an
    # admitted request: the server span's attributes already say so.
    if isinstance(event, RetryFinished):
        return event.attempts == 1 and event.outcome == "success"
    return isinstance(event, AdmissionDecided) and event.outcome == "admitted"


class LogListener:
    """Logs each event through the stdlib logger ``buttress``, fields as ``extra``.

    Nothing is formatted unless the logger is enabled for the event's level, and nothing
    is printed unless the application configured logging (``buttress.configure`` does).
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger = _log) -> None:
        self._logger = logger

    def __call__(self, event: Event, /) -> None:
        kind = type(event)
        lowest = _MIN_LEVEL.get(kind)
        if lowest is None or not self._logger.isEnabledFor(lowest):
            return
        level, name, fields = _DESCRIBE[kind](event)
        if level == lowest or self._logger.isEnabledFor(level):
            self._logger.log(level, name, extra=fields)

    def prepare(self, event: Event, /) -> Callable[[], object] | None:
        """The level check, found once; the line is logged as by a call when enabled."""
        lowest = _MIN_LEVEL.get(type(event))
        if lowest is None:
            return None
        enabled = self._logger.isEnabledFor  # the level may change: checked each time

        def log() -> None:
            if enabled(lowest):
                self(event)

        return log


def default_listeners() -> tuple[Listener, ...]:
    """The listeners the default registry starts with: metrics, span events, logs."""
    return (PrometheusListener(), SpanListener(), LogListener())
