"""buttress.testing as a library: the fake clock, fault scripts and the captures.

Span capture sets the process's global tracer provider, so it is tested in pytest
subprocesses (tests/test_pytest_plugin.py), never in this process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

import pytest

import buttress
from buttress import ConfigurationError
from buttress.events import (
    BreakerTransition,
    FallbackUsed,
    FaultInjected,
    Registry,
    RetryFinished,
    RetryScheduled,
    TimeoutExpired,
    default_registry,
)
from buttress.telemetry import _metrics
from buttress.telemetry._listeners import LogListener, PrometheusListener
from buttress.testing import (
    CALL,
    CapturedEvents,
    FakeClock,
    FaultScript,
    capture_events,
    capture_logs,
    capture_metrics,
    inject_faults,
)

# --- FakeClock ----------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(5.0)
    assert clock() == clock.now == 5.0
    clock.advance(1.5)
    clock.advance(timedelta(milliseconds=500))
    assert clock() == 7.0
    assert clock.sleeps == []  # advancing is not sleeping


def test_fake_clock_sleeps_advance_and_are_recorded() -> None:
    clock = FakeClock()
    clock.sleep(0.25)
    asyncio.run(clock.async_sleep(timedelta(seconds=1)))
    assert clock.sleeps == [0.25, 1.0]
    assert clock.now == 1001.25


@pytest.mark.parametrize("bad", [-1, float("nan"), "1", True])
def test_fake_clock_refuses_to_go_back_or_odd_values(bad: object) -> None:
    clock = FakeClock()
    with pytest.raises(ConfigurationError, match=repr(bad).replace("(", r"\(")):
        clock.advance(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sleep"):
        clock.sleep(bad)  # type: ignore[arg-type]
    assert clock.now == 1000.0


def test_fake_clock_loses_no_step_under_threads() -> None:
    clock = FakeClock(0.0)

    def work() -> None:
        for _ in range(2000):
            clock.advance(1)
            clock.sleep(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now == 16000.0
    assert len(clock.sleeps) == 8000


def test_fake_clock_drives_retry_backoff_without_waiting() -> None:
    clock = FakeClock()
    script = FaultScript([OSError, OSError])
    policy = buttress.retry(on=OSError, attempts=3, clock=clock, sleep=clock.sleep)
    with capture_events() as events:
        assert policy.call(script(lambda: "ok")) == "ok"
    waits = [e.wait for e in events.of_type(RetryScheduled)]
    assert len(waits) == 2
    assert clock.sleeps == waits
    assert clock.now == pytest.approx(1000.0 + sum(waits))


async def test_fake_clock_drives_async_retry_too() -> None:
    clock = FakeClock()
    script = FaultScript([OSError])

    async def fetch() -> str:
        return "ok"

    policy = buttress.retry(on=OSError, attempts=2, clock=clock, sleep=clock.async_sleep)
    assert await policy.call(script(fetch)) == "ok"
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] > 0


# --- FaultScript ---------------------------------------------------------------------------


def test_fault_script_plays_its_outcomes_in_order_then_calls_through() -> None:
    timeout = TimeoutError("slow")
    script = FaultScript([OSError, timeout, "cached", CALL, KeyError])
    calls: list[int] = []

    @script
    def fetch(n: int) -> str:
        calls.append(n)
        return f"real {n}"

    with pytest.raises(OSError):
        fetch(1)
    with pytest.raises(TimeoutError) as info:
        fetch(2)
    assert info.value is timeout
    assert fetch(3) == "cached"
    assert fetch(4) == "real 4"
    with pytest.raises(KeyError):
        fetch(5)
    assert fetch(6) == "real 6"
    assert calls == [4, 6]
    assert (script.calls, script.faults) == (6, 3)


def test_fault_script_then_replaces_the_end_of_the_script() -> None:
    script = FaultScript([], then=ConnectionError)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            script.call(lambda: "never")
    assert script.faults == 3


async def test_fault_script_decorates_coroutine_functions() -> None:
    script = FaultScript([OSError, "cached"])

    @script
    async def fetch() -> str:
        return "real"

    with pytest.raises(OSError):
        await fetch()
    assert await fetch() == "cached"
    assert await fetch() == "real"


def test_fault_script_at_a_rate_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        script = FaultScript.at_rate(0.3, OSError, seed=seed)
        failed = []
        for _ in range(200):
            try:
                script.call(lambda: None)
            except OSError:
                failed.append(True)
            else:
                failed.append(False)
        return failed

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert 30 <= sum(first) <= 90  # about 60 of 200
    assert not any(run_with_rate(0.0))
    assert all(run_with_rate(1.0))


def run_with_rate(rate: float) -> list[bool]:
    script = FaultScript.at_rate(rate, "fault", seed=1)
    return [script.call(lambda: "real") == "fault" for _ in range(50)]


def test_fault_script_results_meet_a_result_predicate() -> None:
    # A scripted result is a fault too, for code that retries on answers like 503.
    clock = FakeClock()
    status = FaultScript.at_rate(0.5, 503, seed=4)
    policy = buttress.retry(
        on=OSError,
        on_result=lambda r: r == 503,
        attempts=10,
        budget=None,
        clock=clock,
        sleep=clock.sleep,
    )
    with capture_events() as events:
        for _ in range(20):
            assert policy.call(status(lambda: 200)) == 200
    retried = events.count(RetryScheduled, error_type="result")
    assert retried == status.calls - 20 > 0
    assert status.faults == 0  # results are not raised


@pytest.mark.parametrize("rate", [-0.1, 1.5, "half", True])
def test_fault_script_refuses_a_rate_outside_0_to_1(rate: object) -> None:
    with pytest.raises(ConfigurationError, match="rate"):
        FaultScript.at_rate(rate, OSError)  # type: ignore[arg-type]


def test_inject_faults_puts_the_script_innermost_and_keeps_the_name() -> None:
    payments = buttress.Policy(
        buttress.fallback("fallback", on=OSError),
        buttress.retry(on=OSError, attempts=3, sleep=lambda s: None),
        name="payments",
    )
    script = FaultScript([OSError, OSError, OSError, OSError])
    with capture_events() as events:
        faulty = inject_faults(payments, script)
        assert faulty.call(lambda: "real") == "fallback"  # three faults exhaust the retry
        assert faulty.call(lambda: "real") == "real"  # the fourth is retried
    assert faulty.name == "payments"
    assert faulty.strategies[-1] is script
    assert events.count(FallbackUsed, name="payments") == 1
    assert events.count(RetryScheduled, name="payments") == 3
    assert events.count(RetryFinished, outcome="exhausted") == 1
    assert script.calls == 5


def test_inject_faults_shares_the_breaker_with_the_original_policy() -> None:
    clock = FakeClock()
    breaker = buttress.CircuitBreaker("inventory", consecutive_failures=2, clock=clock)
    inventory = buttress.Policy(breaker, name="inventory")
    faulty = inject_faults(inventory, FaultScript([OSError, OSError]))
    with capture_events() as events:
        for _ in range(2):
            with pytest.raises(OSError):
                faulty.call(lambda: "real")
        with pytest.raises(buttress.CircuitOpen):  # the original policy sees it open
            inventory.call(lambda: "real")
        clock.advance(timedelta(seconds=30))
        assert inventory.call(lambda: "real") == "real"
    moves = [(e.old, e.new) for e in events.of_type(BreakerTransition, name="inventory")]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_fake_clock_drives_a_rate_limiter() -> None:
    clock = FakeClock()
    limiter = buttress.RateLimiter("search", rate=2, burst=2, clock=clock)
    assert [limiter.call(int, i) for i in range(2)] == [0, 1]
    with pytest.raises(buttress.RateLimited) as info:
        limiter.call(lambda: 2)
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.call(lambda: 3) == 3


def test_inject_faults_into_a_single_strategy() -> None:
    script = FaultScript([OSError])
    faulty = inject_faults(buttress.retry(on=OSError, sleep=lambda s: None), script)
    assert faulty.call(lambda: "real") == "real"
    assert script.calls == 2


def test_inject_faults_refuses_what_it_cannot_compose() -> None:
    with pytest.raises(ConfigurationError, match="FaultScript"):
        inject_faults(buttress.timeout(1), [OSError])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="policy or a strategy"):
        inject_faults(len, FaultScript([]))  # type: ignore[arg-type]


# --- events --------------------------------------------------------------------------------


def test_captured_events_answer_by_type_and_fields() -> None:
    events = CapturedEvents(
        [
            RetryScheduled("a", 1, 0.1, "OSError"),
            RetryScheduled("b", 1, 0.1, "KeyError"),
            RetryFinished("a", 2, "success", ""),
        ]
    )
    assert events.names() == ["RetryScheduled", "RetryScheduled", "RetryFinished"]
    assert events.of_type(RetryScheduled, error_type="KeyError") == [events[1]]
    assert events.count(RetryScheduled) == 2
    assert events.count(RetryScheduled, name="a", attempt=1) == 1
    assert events.count(RetryFinished, outcome="exhausted") == 0
    assert events.count(RetryScheduled, no_such_field=1) == 0
    # Any field name works as a keyword, even one named like a parameter.
    faults = CapturedEvents([FaultInjected("chaos", "latency")])
    assert faults.of_type(FaultInjected, kind="latency", name="chaos") == faults


def test_capture_events_stops_listening_after_the_block() -> None:
    with capture_events() as events:
        default_registry.emit(TimeoutExpired("t", 1.0))
    default_registry.emit(TimeoutExpired("t", 2.0))
    assert events == [TimeoutExpired("t", 1.0)]
    assert default_registry.listeners == ()


# --- metrics -------------------------------------------------------------------------------


def _fail_twice(name: str) -> None:
    policy = buttress.retry(on=OSError, attempts=3, sleep=lambda s: None, name=name)
    policy.call(FaultScript([OSError, OSError]).call, lambda: None)


def test_capture_metrics_records_into_a_fresh_registry_and_restores() -> None:
    before = _metrics.target_registry()
    with capture_metrics() as metrics:
        assert _metrics.target_registry() is metrics.metrics_registry is not before
        _fail_twice("pay")
        assert metrics.value("buttress_retry_attempts_total", policy="pay") == 2
        assert metrics.value("buttress_retry_attempts_total", policy="other") == 0
        assert metrics.value("buttress_retry_calls_total", outcome="success") == 1
        assert metrics.value("buttress_timeouts_total") == 0  # known, never incremented
        assert metrics.value("buttress_bulkhead_in_use") == 0  # a gauge with no child yet
        for typo in ("buttress_no_such_total", "buttress_timeouts_totl", "buttress_timeouts"):
            with pytest.raises(LookupError, match=typo):
                metrics.value(typo)
        with pytest.raises(LookupError, match="did you mean 'buttress_timeouts_total'"):
            metrics.value("buttress_timeouts")
    assert _metrics.target_registry() is before
    # The conftest cleared the default listeners: the capture added one, then removed it.
    assert default_registry.listeners == ()


def test_capture_metrics_uses_the_default_listeners_when_they_are_loaded() -> None:
    default_registry.reset()  # as in a user's suite: defaults load on first use
    with capture_metrics() as metrics:
        _fail_twice("pay")
        # Counted once: the capture did not add a second Prometheus listener.
        assert metrics.value("buttress_retry_attempts_total", policy="pay") == 2
    assert sum(isinstance(x, PrometheusListener) for x in default_registry.listeners) == 1


def test_capture_metrics_leaves_other_registries_alone() -> None:
    other = Registry()
    with capture_metrics() as metrics:
        policy = buttress.retry(on=OSError, sleep=lambda s: None, events=other, name="own")
        policy.call(FaultScript([OSError]).call, lambda: None)
        assert metrics.value("buttress_retry_attempts_total") == 0


# --- logs ----------------------------------------------------------------------------------


def test_capture_logs_gives_buttress_log_events_as_dicts() -> None:
    logger = logging.getLogger("buttress")
    level, handlers = logger.level, list(logger.handlers)
    with capture_logs() as logs:
        _fail_twice("pay")
        logging.getLogger("buttress.access").info("http_request", extra={"status": 200})
        logging.getLogger("elsewhere").warning("not ours")
    scheduled = logs.named("buttress.retry.scheduled")
    assert [e["attempt"] for e in scheduled] == [1, 2]
    assert scheduled[0]["policy"] == "pay"
    assert scheduled[0]["level"] == "info"
    assert scheduled[0]["error_type"] == "OSError"
    assert logs.named("buttress.retry.finished", outcome="success", attempts=3) != []
    assert logs.named("http_request") == [
        {"event": "http_request", "level": "info", "logger": "buttress.access", "status": 200}
    ]
    assert "not ours" not in logs.names()
    assert (logger.level, logger.handlers) == (level, handlers)
    assert not any(isinstance(x, LogListener) for x in default_registry.listeners)
