"""Existing pybreaker breakers and tenacity retries feed buttress events and metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pybreaker
import pytest
import tenacity
from prometheus_client import CollectorRegistry

from buttress.events import (
    BreakerCallRecorded,
    BreakerTransition,
    Event,
    Registry,
    RetryFinished,
    RetryScheduled,
)
from buttress.integrations import PybreakerListener, TenacityHooks
from buttress.telemetry._listeners import PrometheusListener


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def events(registry: Registry) -> Iterator[list[Event]]:
    with registry.capture() as captured:
        yield captured


def _boom() -> None:
    raise OSError("down")


def test_pybreaker_transitions_and_calls(registry: Registry, events: list[Event]) -> None:
    breaker = pybreaker.CircuitBreaker(
        fail_max=2, name="payments", listeners=[PybreakerListener(events=registry)]
    )
    assert breaker.call(lambda: 1) == 1
    with pytest.raises(OSError):
        breaker.call(_boom)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(_boom)  # the second failure opens the breaker
    breaker.half_open()  # as reset_timeout would, without waiting for it
    breaker.call(lambda: 2)
    assert events == [
        BreakerCallRecorded("payments", "success", slow=False),
        BreakerCallRecorded("payments", "failure", slow=False),
        BreakerCallRecorded("payments", "failure", slow=False),
        BreakerTransition("payments", "closed", "open", "pybreaker"),
        BreakerTransition("payments", "open", "half_open", "pybreaker"),
        # pybreaker closes the breaker before it tells listeners of the success.
        BreakerTransition("payments", "half_open", "closed", "pybreaker"),
        BreakerCallRecorded("payments", "success", slow=False),
    ]


def test_pybreaker_name_falls_back(registry: Registry, events: list[Event]) -> None:
    unnamed = pybreaker.CircuitBreaker(listeners=[PybreakerListener(events=registry)])
    renamed = pybreaker.CircuitBreaker(
        name="x", listeners=[PybreakerListener("db", events=registry)]
    )
    unnamed.call(lambda: None)
    renamed.call(lambda: None)
    assert [e.name for e in events] == ["pybreaker", "db"]


def test_pybreaker_feeds_the_same_metrics(registry: Registry) -> None:
    prometheus = CollectorRegistry()
    registry.add(PrometheusListener(prometheus))
    breaker = pybreaker.CircuitBreaker(
        fail_max=1, name="payments", listeners=[PybreakerListener(events=registry)]
    )
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(_boom)
    value = prometheus.get_sample_value
    assert value("buttress_circuit_breaker_state", {"policy": "payments", "state": "open"}) == 1
    labels = {"policy": "payments", "outcome": "failure"}
    assert value("buttress_circuit_breaker_calls_total", labels) == 1


def _no_sleep(seconds: float) -> None:
    pass


def _retrying(hooks: TenacityHooks, **kwargs: object) -> tenacity.Retrying:
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_fixed(0.5),
        sleep=_no_sleep,
        **hooks.options(tenacity.retry_if_exception_type(OSError)),
        **kwargs,  # type: ignore[arg-type]
    )


def test_tenacity_retries_then_succeeds(registry: Registry, events: list[Event]) -> None:
    outcomes: Iterator[Exception | str] = iter([OSError("a"), OSError("b"), "ok"])

    def flaky() -> str:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    assert _retrying(TenacityHooks("payments", events=registry))(flaky) == "ok"
    assert events == [
        RetryScheduled("payments", 1, 0.5, "OSError"),
        RetryScheduled("payments", 2, 0.5, "OSError"),
        RetryFinished("payments", 3, "success", ""),
    ]


def test_tenacity_exhausted_raises_as_tenacity_does(
    registry: Registry, events: list[Event]
) -> None:
    hooks = TenacityHooks("payments", events=registry)
    with pytest.raises(tenacity.RetryError):
        _retrying(hooks)(_boom)
    with pytest.raises(OSError, match="down"):
        _retrying(hooks, reraise=True)(_boom)
    finished = [e for e in events if isinstance(e, RetryFinished)]
    assert finished == [RetryFinished("payments", 3, "exhausted", "OSError")] * 2
    assert sum(isinstance(e, RetryScheduled) for e in events) == 4


def test_tenacity_not_retryable(registry: Registry, events: list[Event]) -> None:
    def bad() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        _retrying(TenacityHooks("payments", events=registry))(bad)
    assert events == [RetryFinished("payments", 1, "not_retryable", "KeyError")]


async def test_tenacity_async(registry: Registry, events: list[Event]) -> None:
    hooks = TenacityHooks("payments", events=registry)
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("once")
        return calls

    async def no_sleep(seconds: float) -> None:
        pass

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(3), sleep=no_sleep, **hooks.options()
    )
    assert await retrying(flaky) == 2
    assert events == [
        RetryScheduled("payments", 1, 0.0, "OSError"),
        RetryFinished("payments", 2, "success", ""),
    ]


def test_tenacity_feeds_the_same_metrics(registry: Registry) -> None:
    prometheus = CollectorRegistry()
    registry.add(PrometheusListener(prometheus))
    with pytest.raises(tenacity.RetryError):
        _retrying(TenacityHooks("payments", events=registry))(_boom)
    value = prometheus.get_sample_value
    labels = {"policy": "payments", "error_type": "OSError"}
    assert value("buttress_retry_attempts_total", labels) == 2
    assert value("buttress_retry_calls_total", {"policy": "payments", "outcome": "exhausted"}) == 1
