"""Helpers for testing code that uses buttress: test mode, captures, a fake clock, faults.

The pytest plugin (installed with buttress, see docs/testing.md) wraps these as fixtures.

>>> import buttress.testing
>>> with buttress.testing.set_testing(attempts=2):
...     buttress.testing.is_testing()
True
"""

from __future__ import annotations

from ..resilience._config import is_testing, set_testing
from ._captures import (
    CapturedEvents,
    CapturedLogs,
    CapturedMetrics,
    CapturedSpans,
    capture_events,
    capture_logs,
    capture_metrics,
    capture_spans,
)
from ._fakes import CALL, FakeClock, FaultScript, inject_faults

__all__ = [
    "CALL",
    "CapturedEvents",
    "CapturedLogs",
    "CapturedMetrics",
    "CapturedSpans",
    "FakeClock",
    "FaultScript",
    "capture_events",
    "capture_logs",
    "capture_metrics",
    "capture_spans",
    "inject_faults",
    "is_testing",
    "set_testing",
]
