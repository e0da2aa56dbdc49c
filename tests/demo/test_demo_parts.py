"""The demo's pieces on their own: timeline, figures, lines and options."""

from __future__ import annotations

import itertools

import pytest

from buttress._cli import main
from buttress._demo._scenario import PHASES, phase_at
from buttress._demo._stats import DemoStats
from buttress._demo._view import budget_text, summary_line
from buttress.events import BreakerTransition, BulkheadUsage, RetryFinished, RetryScheduled
from buttress.testing import FakeClock


def test_phases_cover_the_run_in_order() -> None:
    assert PHASES[0].start == 0.0
    for before, after in itertools.pairwise(PHASES):
        assert before.end == after.start
    assert PHASES[-1].end > 1.0
    assert {p.mode for p in PHASES} == {"healthy", "outage", "slow"}


@pytest.mark.parametrize(
    ("elapsed", "mode"),
    [(0, "healthy"), (30, "outage"), (55, "healthy"), (70, "slow"), (99, "healthy")],
)
def test_phase_at(elapsed: float, mode: str) -> None:
    assert phase_at(elapsed, 100).mode == mode


def test_phase_after_the_end_is_the_last() -> None:
    assert phase_at(500, 100) is PHASES[-1]
    assert phase_at(1, 0) is PHASES[-1]


def _stats(clock: FakeClock) -> DemoStats:
    return DemoStats(objective=0.99, clock=clock)


def test_rates_errors_and_quantiles_over_complete_seconds() -> None:
    clock = FakeClock(100.0)
    stats = _stats(clock)
    for i in range(10):  # second 100: ten requests, one failed
        stats.record(500 if i == 0 else 200, latency=(i + 1) / 100)
    clock.advance(1.0)
    stats.record(200, latency=5.0)  # second 101 is still filling: not counted yet
    assert stats.rate(seconds=5) == pytest.approx(10 / 5)
    assert stats.error_ratio(seconds=5) == pytest.approx(0.1)
    assert stats.latency_quantile(0.5) == pytest.approx(0.05)
    assert stats.latency_quantile(1.0) == pytest.approx(0.10)
    assert stats.burn_rate(seconds=30) == pytest.approx(0.1 / 0.01)
    assert (stats.requests, stats.errors, stats.statuses) == (11, 1, {500: 1, 200: 10})


def test_no_response_counts_as_an_error() -> None:
    stats = _stats(FakeClock())
    stats.record(0, latency=1.0)
    assert stats.errors == 1


def test_budget_left_and_overspent() -> None:
    stats = _stats(FakeClock())
    assert stats.budget_left() == 1.0
    for _ in range(199):
        stats.record(200, 0.01)
    stats.record(503, 0.01)  # 1 error of 200: half the 1 % budget
    assert stats.budget_left() == pytest.approx(0.5)
    assert budget_text(stats) == "budget left  50.0%"
    for _ in range(3):
        stats.record(503, 0.01)
    assert budget_text(stats).startswith("budget overspent")


def test_events_feed_the_strategy_figures() -> None:
    clock = FakeClock(10.0)
    stats = _stats(clock)
    clock.advance(2.5)
    stats(BreakerTransition(name="p", old="closed", new="open", reason="failure_rate"))
    stats(BulkheadUsage(name="p", in_use=3, waiting=0, capacity=8))
    stats(BulkheadUsage(name="p", in_use=1, waiting=0, capacity=8))
    stats(RetryScheduled(name="p", attempt=1, wait=0.1, error_type="OSError"))
    stats(RetryFinished(name="p", attempts=2, outcome="success", error_type=""))
    assert stats.breaker_state == "open"
    assert stats.transitions == [(2.5, "closed", "open", "failure_rate")]
    assert (stats.bulkhead_in_use, stats.bulkhead_peak, stats.bulkhead_capacity) == (1, 3, 8)
    assert (stats.retries, stats.call_outcomes) == (1, {"after_retries": 1})


def test_summary_line_names_every_figure() -> None:
    stats = _stats(FakeClock())
    line = summary_line(stats, PHASES[1], 12.0, 60.0)
    for word in (
        "outage",
        "req/s",
        "errors",
        "p99",
        "SLO burn",
        "budget",
        "breaker",
        "bulkhead",
        "retries",
    ):
        assert word in line


@pytest.mark.parametrize(
    "argv", [["--duration", "0"], ["--duration", "x"], ["--rate", "-1"], ["--port", "70000"]]
)
def test_bad_options_are_named(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", *argv])
    assert info.value.code == 2
    assert argv[1] in capsys.readouterr().err
