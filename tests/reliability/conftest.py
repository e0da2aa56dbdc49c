"""The reliability suite: load, faults, Redis outages and exporter faults on 127.0.0.1.

Every test is bounded in time and count. ``RELIABILITY_SCALE`` (1 by default, the
bounded form CI runs) multiplies durations and request counts; ``make reliability`` runs
a longer form. Each test records its figures with the ``figures`` fixture; they are
printed at the end of the run, so a run's results can be read and pasted into
docs/reliability.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from buttress import ConfigurationError

_FIGURES: list[tuple[str, dict[str, object]]] = []


def _scale() -> float:
    raw = os.environ.get("RELIABILITY_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"RELIABILITY_SCALE must be a number, got {raw!r}") from None
    if not 0 < value <= 100:
        raise ConfigurationError(f"RELIABILITY_SCALE must be in (0, 100], got {raw!r}")
    return value


SCALE = _scale()

Figures = Callable[[str, dict[str, object]], None]


@pytest.fixture
def scale() -> float:
    """How much longer than the bounded (CI) form this run is."""
    return SCALE


@pytest.fixture
def figures() -> Figures:
    """Record one test's figures (printed in the terminal summary)."""

    def record(title: str, values: dict[str, object]) -> None:
        _FIGURES.append((title, values))

    return record


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section(f"reliability figures (RELIABILITY_SCALE={SCALE:g})")
    for title, values in _FIGURES:
        terminalreporter.write_line(f"{title}:")
        for key, value in values.items():
            terminalreporter.write_line(f"  {key}: {_format(value)}")
