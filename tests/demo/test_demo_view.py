"""The demo's figures over time: the one-second timeline, sparklines, words and views."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from buttress._demo._scenario import PHASES
from buttress._demo._sparkline import ASCII, BLOCKS, can_draw_blocks, sparkline, squeeze
from buttress._demo._stats import DemoStats
from buttress._demo._timeline import timeline
from buttress._demo._view import PlainView, RichView, summary_line
from buttress._demo._wording import (
    CALL_OUTCOMES,
    call_outcome,
    counts_text,
    overspent,
    retry_reason,
)
from buttress.events import (
    BreakerRejected,
    BreakerTransition,
    BulkheadUsage,
    FallbackUsed,
    RetryFinished,
    RetryScheduled,
)
from buttress.testing import FakeClock


def _stats(clock: FakeClock) -> DemoStats:
    return DemoStats(objective=0.99, latency_threshold=0.5, clock=clock)


# --- wording ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "attempts", "error_type", "key"),
    [
        ("success", 1, "", "first_attempt"),
        ("success", 3, "", "after_retries"),
        ("not_retryable", 1, "CircuitOpen", "refused_by_open_breaker"),
        ("not_retryable", 2, "BulkheadFull", "refused_by_full_bulkhead"),
        ("not_retryable", 1, "ReadTimeout", "timed_out"),
        ("deadline", 1, "TimedOut", "timed_out"),
        ("exhausted", 3, "result", "failed_every_attempt"),
        ("budget", 1, "result", "retry_budget_spent"),
        ("deadline", 2, "result", "deadline_reached"),
        ("not_retryable", 1, "ValueError", "error_not_retried"),
    ],
)
def test_each_way_a_call_ends_has_plain_words(
    outcome: str, attempts: int, error_type: str, key: str
) -> None:
    assert call_outcome(outcome, attempts, error_type) == key
    assert "not_retryable" not in CALL_OUTCOMES[key]


@pytest.mark.parametrize(
    ("left", "text"),
    [(-0.04, "overspent 1.04x"), (-1.0, "overspent 2.00x"), (-11.5, "overspent 12.5x")],
)
def test_an_overspent_budget_reads_as_how_many_times_it_was_spent(left: float, text: str) -> None:
    assert overspent(left) == text


def test_counts_read_largest_first_in_words() -> None:
    counts = {"first_attempt": 90, "refused_by_open_breaker": 617, "timed_out": 0}
    assert counts_text(counts, CALL_OUTCOMES) == (
        "refused by the open breaker (pricing not called) 617, answered at the first attempt 90"
    )
    assert retry_reason("result") == "5xx answer"
    assert retry_reason("ConnectError") == "ConnectError"


# --- the timeline ------------------------------------------------------------------------------


def test_timeline_fills_gaps_and_weights_burn_rates_by_traffic() -> None:
    clock = FakeClock(50.0)
    stats = _stats(clock)
    for _ in range(99):  # second 0: 99 good quotes, one failed
        stats.record(200, 0.01)
    stats.record(503, 0.01)
    clock.advance(2.0)  # second 1 is silent
    stats.record(503, 0.8)  # second 2: one quote, failed and slow
    clock.advance(1.0)
    samples = timeline(stats)
    assert [s.at for s in samples] == [0, 1, 2]
    assert [s.requests for s in samples] == [100, 0, 1]
    # 2 errors in 101 quotes over the window, not the average of 1 % and 100 %.
    assert samples[2].burn_short == pytest.approx((2 / 101) / 0.01)
    assert samples[1].burn_short == pytest.approx(1.0)
    assert samples[2].latency_burn_long == pytest.approx((1 / 101) / 0.01)
    assert samples[0].budget_left == pytest.approx(0.0)  # 1 error of 100 spends 1 %
    assert samples[2].budget_left == pytest.approx(1 - 2 / 1.01)
    assert samples[2].latency_budget_left == pytest.approx(1 - 1 / 1.01)
    assert samples[2].p99 == pytest.approx(0.8)
    assert stats.slow == 1
    assert timeline(stats, last=1)[0].at == 2


def test_timeline_follows_the_breaker_and_the_strategies() -> None:
    clock = FakeClock(0.0)
    stats = _stats(clock)
    stats.record_upstream()
    stats(BulkheadUsage(name="p", in_use=5, waiting=0, capacity=16))
    stats(RetryScheduled(name="p", attempt=1, wait=0.1, error_type="result"))
    clock.advance(1.2)
    stats(BreakerTransition(name="p", old="closed", new="open", reason="failure_rate"))
    stats(BreakerRejected(name="p", state="open"))
    stats(FallbackUsed(name="p", error_type="CircuitOpen"))
    clock.advance(0.5)
    stats(BreakerTransition(name="p", old="open", new="half_open", reason="reset_timeout"))
    clock.advance(1.0)
    samples = timeline(stats)
    assert [s.breaker_state for s in samples] == ["closed", "half_open"]
    assert (samples[0].upstream_calls, samples[0].bulkhead_peak) == (1, 5)
    assert samples[0].retries == {"5xx answer": 1}
    assert (samples[1].refused_by_breaker, samples[1].fallbacks) == (1, 1)
    assert stats.rejections == {"breaker": 1}


def test_old_seconds_keep_their_percentiles_but_not_their_raw_latencies() -> None:
    clock = FakeClock(0.0)
    stats = _stats(clock)
    for second in range(70):
        stats.record(200, 0.001 * (second + 1))
        clock.advance(1.0)
    assert stats.seconds[0].latencies == []
    assert stats.seconds[0].quantiles() == (0.001, 0.001, 0.001)
    assert timeline(stats)[0].p50 == pytest.approx(0.001)
    assert stats.seconds[-1].latencies == [pytest.approx(0.07)]


# --- sparklines ------------------------------------------------------------------------------


def test_sparkline_scales_and_keeps_small_values_visible() -> None:
    assert sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert sparkline([0.0, 0.001], high=1.0) == "▁▂"  # one failure in a calm minute shows
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([]) == ""
    assert sparkline([1, 2], ascii=True) == ASCII[4] + ASCII[-1]
    assert sparkline([float("nan"), 3]) == "▁█"


def test_squeeze_keeps_peaks() -> None:
    values = [0.0] * 100
    values[37] = 9.0
    squeezed = squeeze(values, 10)
    assert len(squeezed) == 10
    assert max(squeezed) == 9.0
    assert squeeze([1.0, 2.0], 10) == [1.0, 2.0]
    assert len(sparkline(values, width=20)) == 20


def test_blocks_only_where_the_stream_can_encode_them() -> None:
    assert can_draw_blocks(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert not can_draw_blocks(io.TextIOWrapper(io.BytesIO(), encoding="ascii"))


# --- views -----------------------------------------------------------------------------------


def _incident(clock: FakeClock) -> DemoStats:
    stats = _stats(clock)
    for second in range(12):
        for _ in range(10):
            stats.record(503 if 4 <= second < 8 else 200, 0.02)
        if second == 4:
            stats(BreakerTransition(name="p", old="closed", new="open", reason="failure_rate"))
            stats(
                RetryFinished(
                    name="p", attempts=1, outcome="not_retryable", error_type="CircuitOpen"
                )
            )
            stats(BreakerRejected(name="p", state="open"))
        clock.advance(1.0)
    return stats


def test_plain_view_prints_trends_on_each_line_and_for_the_whole_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = FakeClock(0.0)
    stats = _incident(clock)
    view = PlainView(every=2.0, ascii=False)
    view.update(stats, PHASES[1], 12.0, 12.0)
    view.close()
    lines = capsys.readouterr().out.splitlines()
    assert "last 10 s: errors" in lines[0]
    assert "refused by the open breaker 1" in lines[0]
    assert lines[1].startswith("trends over the run (12 s, 1 s per mark)")
    errors = next(line for line in lines if line.strip().startswith("errors"))
    assert "▁▁▁▁████▁▁▁▁" in errors
    assert "peak 100 %" in errors
    breaker = next(line for line in lines if line.strip().startswith("breaker"))
    assert "▁▁▁▁████████" in breaker


def test_plain_view_falls_back_to_ascii(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock(0.0)
    view = PlainView(ascii=True)
    view.update(_incident(clock), PHASES[1], 12.0, 12.0)
    view.close()
    out = capsys.readouterr().out
    assert not set(BLOCKS) & set(out)
    assert "____####____" in out


def test_rich_view_shows_sparklines_and_plain_words() -> None:
    clock = FakeClock(0.0)
    stats = _incident(clock)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    console = Console(file=stream, force_terminal=True, width=160, color_system=None)
    view = RichView(console)
    view.update(stats, PHASES[1], 12.0, 12.0)
    view.close()
    stream.flush()
    out = raw.getvalue().decode("utf-8")
    assert "▁▁▁▁████" in out
    assert "refused by the open breaker" in out
    assert "not_retryable" not in out


def test_summary_line_words() -> None:
    stats = _stats(FakeClock())
    assert "none refused" in summary_line(stats, PHASES[0], 0.0, 60.0)
