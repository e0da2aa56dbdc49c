"""Every resilience event becomes a metric, a span event and a log event."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from buttress import events as ev
from buttress.telemetry import _listeners, _metrics
from buttress.telemetry import _names as n

ALL_EVENTS: list[ev.Event] = [
    ev.RetryScheduled("pay", 1, 0.5, "ConnectError"),
    ev.RetryFinished("pay", 3, "exhausted", "ConnectError"),
    ev.BreakerTransition("pay", "closed", "open", "failure_rate"),
    ev.BreakerRejected("pay", "open"),
    ev.BreakerCallRecorded("pay", "failure", slow=False),
    ev.BulkheadUsage("pay", in_use=3, waiting=1, capacity=10),
    ev.BulkheadRejected("pay", "full"),
    ev.RateLimitRejected("pay", 0.25),
    ev.RateLimitWaited("pay", 0.1),
    ev.TimeoutExpired("pay", 2.0),
    ev.FallbackUsed("pay", "CircuitOpen"),
    ev.StoreUnavailable("pay", "redis", "ConnectionError"),
    ev.StoreRecovered("pay", "redis"),
    ev.FaultInjected("pay", "latency"),
    ev.HedgeSent("pay", 2, 0.05),
    ev.HedgeWon("pay", 2),
    ev.ThrottleRejected("pay", 0.75),
    ev.ThrottleUpdated("pay", requests=10, accepts=4, acceptance=0.4),
    ev.AdmissionDecided("pay", "shed", "sheddable"),
    ev.AdmissionLimitUpdated("pay", 12, 9),
]


def test_the_examples_cover_every_event_type() -> None:
    assert {type(e) for e in ALL_EVENTS} == set(typing.get_args(ev.Event))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


_MODE = ["emit"]


@pytest.fixture(autouse=True, params=["emit", "emit_prebuilt"])
def _emit_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs twice: events emitted as built, and as prebuilt (prepared)."""
    _MODE[0] = request.param
    yield
    _MODE[0] = "emit"


def _emit(listener: ev.Listener, *events: ev.Event) -> None:
    registry = ev.Registry()
    registry.add(listener)
    emit = registry.emit if _MODE[0] == "emit" else registry.emit_prebuilt
    for event in events:
        emit(event)


def test_every_event_maps_to_its_metrics(registry: CollectorRegistry) -> None:
    _emit(_listeners.PrometheusListener(registry), *ALL_EVENTS)
    value = registry.get_sample_value
    assert value(n.RETRY_ATTEMPTS, {"policy": "pay", "error_type": "ConnectError"}) == 1
    assert value(n.RETRY_CALLS, {"policy": "pay", "outcome": "exhausted"}) == 1
    assert value(n.BREAKER_STATE, {"policy": "pay", "state": "open"}) == 1
    for state in ("closed", "half_open", "forced_open", "forced_closed"):
        assert value(n.BREAKER_STATE, {"policy": "pay", "state": state}) == 0
    labels = {"policy": "pay", "from_state": "closed", "to_state": "open"}
    assert value(n.BREAKER_TRANSITIONS, labels) == 1
    assert value(n.BREAKER_REJECTIONS, {"policy": "pay"}) == 1
    assert value(n.BREAKER_CALLS, {"policy": "pay", "outcome": "failure"}) == 1
    assert value(n.BULKHEAD_IN_USE, {"policy": "pay"}) == 3
    assert value(n.BULKHEAD_WAITING, {"policy": "pay"}) == 1
    assert value(n.BULKHEAD_CAPACITY, {"policy": "pay"}) == 10
    assert value(n.BULKHEAD_REJECTIONS, {"policy": "pay", "reason": "full"}) == 1
    assert value(n.RATE_LIMITER_REJECTIONS, {"policy": "pay"}) == 1
    assert value(n.RATE_LIMITER_WAITS, {"policy": "pay"}) == 1
    assert value(n.TIMEOUTS, {"policy": "pay"}) == 1
    assert value(n.FALLBACKS, {"policy": "pay", "error_type": "CircuitOpen"}) == 1
    store = {"policy": "pay", "store": "redis"}
    assert value(n.STORE_ERRORS, {**store, "error_type": "ConnectionError"}) == 1
    assert value(n.STORE_DEGRADED, store) == 0  # recovered after being unavailable
    assert value(n.FAULTS_INJECTED, {"policy": "pay", "kind": "latency"}) == 1
    assert value(n.HEDGES_SENT, {"policy": "pay"}) == 1
    assert value(n.HEDGES_WON, {"policy": "pay"}) == 1
    assert value(n.THROTTLE_REJECTIONS, {"policy": "pay"}) == 1
    assert value(n.THROTTLE_ACCEPTANCE, {"policy": "pay"}) == 0.4
    decided = {"policy": "pay", "outcome": "shed", "criticality": "sheddable"}
    assert value(n.ADMISSION_REQUESTS, decided) == 1
    assert value(n.ADMISSION_LIMIT, {"policy": "pay"}) == 12
    assert value(n.ADMISSION_IN_FLIGHT, {"policy": "pay"}) == 9


def test_store_unavailable_marks_degraded(registry: CollectorRegistry) -> None:
    _emit(_listeners.PrometheusListener(registry), ev.StoreUnavailable("q", "redis", "E"))
    assert registry.get_sample_value(n.STORE_DEGRADED, {"policy": "q", "store": "redis"}) == 1


def test_breaker_state_follows_transitions(registry: CollectorRegistry) -> None:
    listener = _listeners.PrometheusListener(registry)
    _emit(
        listener,
        ev.BreakerTransition("db", "closed", "open", "r"),
        ev.BreakerTransition("db", "open", "half_open", "r"),
    )
    states = {
        s: registry.get_sample_value(n.BREAKER_STATE, {"policy": "db", "state": s})
        for s in _metrics.BREAKER_STATES
    }
    assert states == {
        "closed": 0,
        "open": 0,
        "half_open": 1,
        "forced_open": 0,
        "forced_closed": 0,
    }


def test_labelled_children_are_cached(registry: CollectorRegistry) -> None:
    listener = _listeners.PrometheusListener(registry)
    event = ev.RetryScheduled("pay", 1, 0.1, "OSError")
    listener(event)
    family = _metrics.metrics_for(registry).retry_attempts
    first = family.child("pay", "OSError")
    listener(event)
    listener(event)
    assert family.child("pay", "OSError") is first  # one child, found again, never rebuilt
    assert (
        registry.get_sample_value(n.RETRY_ATTEMPTS, {"policy": "pay", "error_type": "OSError"}) == 3
    )


def test_concurrent_increments_are_never_lost(registry: CollectorRegistry) -> None:
    listener = _listeners.PrometheusListener(registry)
    event = ev.RetryFinished("pay", 1, "success", "")
    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        for _ in range(2_000):
            listener(event)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {"policy": "pay", "outcome": "success"}
    assert registry.get_sample_value(n.RETRY_CALLS, labels) == 16 * 2_000
    assert registry.get_sample_value(n.RETRY_CALLS.removesuffix("_total") + "_created", labels)


def test_a_second_registration_of_the_same_counter_is_refused(
    registry: CollectorRegistry,
) -> None:
    _metrics.metrics_for(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        _metrics.ResilienceMetrics(registry)


def test_one_set_of_instruments_per_registry(registry: CollectorRegistry) -> None:
    assert _metrics.metrics_for(registry) is _metrics.metrics_for(registry)
    assert _metrics.metrics_for(registry) is not _metrics.metrics_for(CollectorRegistry())


def test_default_listener_follows_the_target_registry(registry: CollectorRegistry) -> None:
    assert _metrics.target_registry() is REGISTRY
    _metrics.set_target_registry(registry)
    try:
        ev.default_registry.reset()
        ev.default_registry.emit(ev.TimeoutExpired("slow", 1.0))
    finally:
        _metrics.set_target_registry(REGISTRY)
    assert registry.get_sample_value(n.TIMEOUTS, {"policy": "slow"}) == 1


def test_a_prebuilt_event_follows_the_target_registry_too() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    done = ev.RetryFinished("pay", 1, "success", "")
    rejected = ev.BreakerRejected("pay", "open")
    labels = {"policy": "pay", "outcome": "success"}
    ev.default_registry.reset()
    try:
        _metrics.set_target_registry(first)
        for _ in range(3):
            ev.default_registry.emit_prebuilt(done)
            ev.default_registry.emit_prebuilt(rejected)
        _metrics.set_target_registry(second)  # configure() chose another registry
        ev.default_registry.emit_prebuilt(done)
        ev.default_registry.emit_prebuilt(rejected)
    finally:
        _metrics.set_target_registry(REGISTRY)
    assert first.get_sample_value(n.RETRY_CALLS, labels) == 3
    assert second.get_sample_value(n.RETRY_CALLS, labels) == 1
    assert first.get_sample_value(n.BREAKER_REJECTIONS, {"policy": "pay"}) == 3
    assert second.get_sample_value(n.BREAKER_REJECTIONS, {"policy": "pay"}) == 1


def test_a_prebuilt_event_hears_the_listeners_of_the_moment(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    events = ev.Registry()
    counted = _listeners.PrometheusListener(registry)
    events.add(counted)
    done = ev.RetryFinished("pay", 1, "success", "")
    heard: list[ev.Event] = []
    events.emit_prebuilt(done)
    events.add(heard.append)  # added after the event was prepared
    events.emit_prebuilt(done)
    events.remove(counted)
    events.emit_prebuilt(done)
    assert heard == [done, done]
    assert registry.get_sample_value(n.RETRY_CALLS, {"policy": "pay", "outcome": "success"}) == 2
    # A first-attempt success is DEBUG: logged once the level is on, not before.
    events.add(_listeners.LogListener())
    events.emit_prebuilt(done)
    assert not [r for r in caplog.records if r.name == "buttress"]
    with caplog.at_level(logging.DEBUG, logger="buttress"):
        events.emit_prebuilt(done)
    assert [r.getMessage() for r in caplog.records if r.name == "buttress"] == [
        n.EVENT_RETRY_FINISHED
    ]


class _Broken:
    def __init__(self) -> None:
        self.calls = 0

    def prepare(self, event: ev.Event) -> None:
        raise RuntimeError("cannot prepare")

    def __call__(self, event: ev.Event) -> None:
        self.calls += 1


def test_a_listener_that_fails_to_prepare_is_called_instead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = ev.Registry()
    broken = _Broken()
    events.add(broken)

    def failing() -> None:
        raise RuntimeError("action failed")

    class Failing:
        def prepare(self, event: ev.Event) -> typing.Callable[[], None]:
            return failing

        def __call__(self, event: ev.Event) -> None:
            raise AssertionError("prepared: not called")

    heard: list[ev.Event] = []
    events.add(Failing())
    events.add(heard.append)
    done = ev.RetryFinished("pay", 1, "success", "")
    with caplog.at_level(logging.ERROR, logger="buttress"):
        events.emit_prebuilt(done)
        events.emit_prebuilt(done)
    assert broken.calls == 2
    assert heard == [done, done]  # a failing action never stops the others
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed to prepare" in m for m in messages) == 1  # prepared once, cached
    assert sum("action" in m and "failed on" in m for m in messages) == 2


def test_default_listeners_are_metrics_spans_and_logs() -> None:
    kinds = [type(x) for x in _listeners.default_listeners()]
    assert kinds == [_listeners.PrometheusListener, _listeners.SpanListener, _listeners.LogListener]


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_events_become_span_events_on_the_current_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with provider.get_tracer("t").start_as_current_span("call"):
        _emit(_listeners.SpanListener(), *ALL_EVENTS)
    (span,) = exporter.get_finished_spans()
    names = [e.name for e in span.events]
    # Per-call bookkeeping (calls counted, bulkhead occupancy) stays out of spans.
    assert names == [
        n.EVENT_RETRY_SCHEDULED,
        n.EVENT_RETRY_FINISHED,
        n.EVENT_BREAKER_TRANSITION,
        n.EVENT_BREAKER_REJECTED,
        n.EVENT_BULKHEAD_REJECTED,
        n.EVENT_RATE_LIMITED,
        n.EVENT_RATE_LIMIT_WAITED,
        n.EVENT_TIMEOUT,
        n.EVENT_FALLBACK,
        n.EVENT_STORE_UNAVAILABLE,
        n.EVENT_STORE_RECOVERED,
        n.EVENT_FAULT_INJECTED,
        n.EVENT_HEDGE_SENT,
        n.EVENT_HEDGE_WON,
        n.EVENT_THROTTLE_REJECTED,
        n.EVENT_ADMISSION,
        n.EVENT_ADMISSION_LIMIT,
    ]
    assert dict(span.events[12].attributes or {}) == {
        n.ATTR_POLICY: "pay",
        n.ATTR_HEDGE_ATTEMPT: 2,
        n.ATTR_HEDGE_DELAY: 0.05,
    }
    assert dict(span.events[14].attributes or {}) == {
        n.ATTR_POLICY: "pay",
        n.ATTR_THROTTLE_PROBABILITY: 0.75,
    }
    assert dict(span.events[-2].attributes or {}) == {
        n.ATTR_POLICY: "pay",
        n.ATTR_OUTCOME: "shed",
        n.ATTR_ADMISSION_CRITICALITY: "sheddable",
    }
    assert dict(span.events[0].attributes or {}) == {
        n.ATTR_POLICY: "pay",
        n.ATTR_RETRY_ATTEMPT: 1,
        n.ATTR_RETRY_WAIT: 0.5,
        n.ATTR_ERROR_TYPE: "ConnectError",
    }
    assert dict(span.events[2].attributes or {}) == {
        n.ATTR_POLICY: "pay",
        n.ATTR_BREAKER_FROM_STATE: "closed",
        n.ATTR_BREAKER_TO_STATE: "open",
        n.ATTR_REASON: "failure_rate",
    }


def test_a_successful_retry_has_no_error_type_on_the_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with provider.get_tracer("t").start_as_current_span("call"):
        _emit(_listeners.SpanListener(), ev.RetryFinished("pay", 2, "success", ""))
    (span,) = exporter.get_finished_spans()
    assert n.ATTR_ERROR_TYPE not in (span.events[0].attributes or {})


def test_no_span_no_span_event() -> None:
    # Outside any span the current span does not record: the listener does nothing.
    _listeners.SpanListener()(ev.TimeoutExpired("x", 1.0))


def test_events_are_logged_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="buttress"):
        _emit(_listeners.LogListener(), *ALL_EVENTS)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("INFO", n.EVENT_RETRY_SCHEDULED),
        ("WARNING", n.EVENT_RETRY_FINISHED),
        ("WARNING", n.EVENT_BREAKER_TRANSITION),
        ("DEBUG", n.EVENT_BREAKER_REJECTED),
        ("INFO", n.EVENT_BULKHEAD_REJECTED),
        ("INFO", n.EVENT_RATE_LIMITED),
        ("DEBUG", n.EVENT_RATE_LIMIT_WAITED),
        ("WARNING", n.EVENT_TIMEOUT),
        ("INFO", n.EVENT_FALLBACK),
        ("WARNING", n.EVENT_STORE_UNAVAILABLE),
        ("INFO", n.EVENT_STORE_RECOVERED),
        ("DEBUG", n.EVENT_FAULT_INJECTED),
        ("DEBUG", n.EVENT_HEDGE_SENT),
        ("DEBUG", n.EVENT_HEDGE_WON),
        ("DEBUG", n.EVENT_THROTTLE_REJECTED),
        ("INFO", n.EVENT_ADMISSION),
        ("DEBUG", n.EVENT_ADMISSION_LIMIT),
    ]
    first = caplog.records[0]
    assert (first.policy, first.attempt, first.wait_seconds, first.error_type) == (  # type: ignore[attr-defined]
        "pay",
        1,
        0.5,
        "ConnectError",
    )


def test_each_event_logs_at_or_above_its_lowest_level() -> None:
    assert set(_listeners._MIN_LEVEL) == set(_listeners._DESCRIBE)
    for event in ALL_EVENTS:
        if type(event) in _listeners._DESCRIBE:
            level, _, _ = _listeners._DESCRIBE[type(event)](event)
            assert level >= _listeners._MIN_LEVEL[type(event)], event
    success = ev.RetryFinished("pay", 1, "success", "")
    assert _listeners._DESCRIBE[ev.RetryFinished](success)[0] == logging.DEBUG
    admitted = ev.AdmissionDecided("pay", "admitted", "default")
    assert _listeners._DESCRIBE[ev.AdmissionDecided](admitted)[0] == logging.DEBUG


def test_an_admitted_request_adds_no_span_event(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with provider.get_tracer("t").start_as_current_span("call"):
        _emit(_listeners.SpanListener(), ev.AdmissionDecided("pay", "admitted", "default"))
    (span,) = exporter.get_finished_spans()
    assert list(span.events) == []


def test_disabled_levels_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="buttress"):
        _emit(_listeners.LogListener(), ev.BreakerRejected("pay", "open"))
    assert caplog.records == []


def test_the_library_prints_nothing_when_logging_is_not_configured() -> None:
    # Python's last-resort handler would print the WARNING to stderr without a handler.
    code = (
        "from buttress.events import default_registry, TimeoutExpired\n"
        "default_registry.emit(TimeoutExpired('slow', 1.0))\n"
        "import logging; logging.getLogger('other').warning('visible')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr == "visible\n"


class _Quiet:
    def __call__(self, event: ev.Event) -> None:
        pass


def test_a_removed_listener_is_not_kept_alive_by_prepared_events() -> None:
    import gc
    import weakref

    events = ev.Registry()
    listener = _Quiet()
    gone = weakref.ref(listener)
    events.add(listener)
    events.emit_prebuilt(ev.RetryFinished("pay", 1, "success", ""))
    events.remove(listener)
    del listener
    gc.collect()
    assert gone() is None
