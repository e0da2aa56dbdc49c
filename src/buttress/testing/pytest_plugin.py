"""buttress's pytest plugin (entry point ``pytest11``): fixtures for testing code that
uses buttress. Each fixture acts only in the tests that request it and undoes what it
did; nothing is imported from buttress until a fixture runs, so pytest starts as fast
without buttress's fixtures as with them. See docs/testing.md.

Load it by name where the entry point is not installed:
``pytest -p buttress.testing.pytest_plugin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

__all__ = [
    "buttress_events",
    "buttress_logs",
    "buttress_metrics",
    "buttress_spans",
    "buttress_test_mode",
    "fake_clock",
]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from buttress.testing import (
        CapturedEvents,
        CapturedLogs,
        CapturedMetrics,
        CapturedSpans,
        FakeClock,
    )


@pytest.fixture
def buttress_events() -> Iterator[CapturedEvents]:
    """Every event buttress's strategies emit during the test."""
    from buttress.testing import capture_events

    with capture_events() as events:
        yield events


@pytest.fixture
def buttress_metrics() -> Iterator[CapturedMetrics]:
    """A fresh Prometheus registry buttress records into for the test: ``.value(name)``."""
    from buttress.testing import capture_metrics

    with capture_metrics() as metrics:
        yield metrics


@pytest.fixture
def buttress_spans() -> Iterator[CapturedSpans]:
    """The spans that end during the test, recorded by the global SDK tracer provider."""
    from buttress.testing import capture_spans

    with capture_spans() as spans:
        yield spans


@pytest.fixture
def buttress_logs() -> Iterator[CapturedLogs]:
    """buttress's log events during the test, as dicts of fields."""
    from buttress.testing import capture_logs

    with capture_logs() as logs:
        yield logs


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when told: pass ``clock=fake_clock, sleep=fake_clock.sleep``."""
    from buttress.testing import FakeClock

    return FakeClock()


@pytest.fixture
def buttress_test_mode() -> Iterator[None]:
    """Test mode on for the test (retries never sleep, one attempt), restored after.

    Inside the test, ``buttress.testing.set_testing(attempts=3)`` allows more attempts;
    the mode from before the test comes back either way.
    """
    from buttress.testing import set_testing

    # set_testing returns the previous mode as a context manager that restores it.
    with set_testing(True):
        yield
