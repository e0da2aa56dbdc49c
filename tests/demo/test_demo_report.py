"""The incident report's model and markup, from hand-made figures and spans."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import pytest

from buttress._demo._report_html import render_html
from buttress._demo._report_model import breaker_story, build_report
from buttress._demo._report_svg import line_chart, nice_step
from buttress._demo._report_traces import SpanRecord
from buttress._demo._stats import DemoStats
from buttress._demo._summary import build_summary
from buttress._demo._timeline import timeline
from buttress.events import BreakerTransition, BulkheadUsage
from buttress.testing import FakeClock

_MS = 1_000_000


def _run(reason: str = "failure_rate") -> tuple[dict[str, Any], DemoStats]:
    clock = FakeClock(0.0)
    stats = DemoStats(objective=0.99, latency_threshold=0.5, clock=clock)
    for second in range(20):
        for i in range(10):
            stats.record(503 if 5 <= second < 10 and i < 5 else 200, 0.01 * (i + 1))
        if second == 6:
            stats(BreakerTransition(name="pricing", old="closed", new="open", reason=reason))
            stats(BulkheadUsage(name="pricing", in_use=4, waiting=0, capacity=16))
        clock.advance(1.0)
    summary = build_summary(stats, interrupted=False, upstream_calls=150, latency_threshold=0.5)
    return summary, stats


def _span(
    trace: int,
    span: int,
    parent: int | None,
    kind: str,
    service: str,
    start_ms: float,
    end_ms: float,
    status: int | None = 200,
    attempt: int = 0,
    name: str = "GET",
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace,
        span_id=span,
        parent_id=parent,
        name=name,
        service=service,
        kind=kind,
        start=int(start_ms * _MS),
        end=int(end_ms * _MS),
        status=status,
        error=str(status) if status is not None and status >= 500 else None,
        attempt=attempt,
    )


def _traces() -> list[SpanRecord]:
    return [
        # trace 1: one slow attempt; pricing finishes after checkout answered
        _span(1, 10, None, "server", "checkout", 0, 450, 504, name="GET /quote/{sku}"),
        _span(1, 11, 10, "client", "checkout", 1, 449, None),
        _span(1, 12, 11, "server", "pricing", 2, 520, name="GET /price/{sku}"),
        # trace 2: a 503, a retry, a 200
        _span(2, 20, None, "server", "checkout", 1000, 1060, name="GET /quote/{sku}"),
        _span(2, 21, 20, "client", "checkout", 1001, 1010, 503),
        _span(2, 22, 21, "server", "pricing", 1002, 1009, 503, name="GET /price/{sku}"),
        _span(2, 23, 20, "client", "checkout", 1040, 1055, 200, attempt=1),
        _span(2, 24, 23, "server", "pricing", 1041, 1054, name="GET /price/{sku}"),
        # trace 3: retried, failed, then answered 200 by the fallback: the quote whose
        # retry worked is preferred, though this one made more attempts
        _span(3, 30, None, "server", "checkout", 2000, 2030, name="GET /quote/{sku}"),
        _span(3, 31, 30, "client", "checkout", 2001, 2005, 503),
        _span(3, 32, 30, "client", "checkout", 2010, 2015, 503, attempt=1),
        _span(3, 33, 30, "client", "checkout", 2020, 2025, 503, attempt=2),
    ]


def _report(**kwargs: Any) -> Any:
    summary, stats = _run(**kwargs)
    return build_report(
        summary, timeline(stats), _traces(), duration=20.0, started_at="2026-01-01 00:00:00"
    )


def test_every_chart_title_is_a_panel_of_the_dashboard_it_names() -> None:
    report = _report()
    folder = resources.files("buttress.dashboards") / "json"
    titles: dict[str, set[str]] = {}
    for name in ("buttress-service.json", "buttress-slo.json", "buttress-resilience.json"):
        board = json.loads((folder / name).read_text(encoding="utf-8"))
        titles[board["title"]] = {p["title"] for p in board["panels"]}
    for section in report.sections:
        assert section.dashboard in titles
        for chart in section.charts:
            assert chart.title in titles[section.dashboard], chart.title
            assert chart.reading
            assert all(len(s.points) == 20 for s in chart.series), chart.key


def test_phases_and_transitions_are_on_the_time_axis() -> None:
    report = _report()
    assert report.duration == 20.0
    assert [(b.start, b.end, b.mode) for b in report.bands][:2] == [
        (0.0, 5.0, "healthy"),
        (5.0, 10.0, "outage"),
    ]
    assert report.bands[-1].end == 20.0
    assert [(m.at, m.new) for m in report.marks] == [(6.0, "open")]
    state = next(c for c in report.charts() if c.key == "breaker-state")
    assert state.series[0].points[5:7] == ((5.5, 0.0), (6.5, 2.0))


def test_waterfalls_show_the_slowest_quote_and_a_retry_that_saved_one() -> None:
    slowest, retried = _report().waterfalls
    assert slowest.trace_id == f"{1:032x}"
    assert slowest.total_ms == pytest.approx(520)  # pricing outlived its caller
    assert "pricing went on working 70 ms after checkout had answered" in slowest.reading
    assert [b.depth for b in slowest.bars] == [0, 1, 2]
    assert slowest.bars[0].failed
    assert not slowest.bars[2].failed
    assert retried.trace_id == f"{2:032x}"
    assert [b.label for b in retried.bars] == [
        "checkout GET /quote/{sku}",
        "checkout -> pricing GET, attempt 1",
        "pricing GET /price/{sku}",
        "checkout -> pricing GET, attempt 2",
        "pricing GET /price/{sku}",
    ]
    assert [b.failed for b in retried.bars] == [False, True, True, False, False]
    assert retried.bars[3].start_ms == pytest.approx(40)


def test_what_happened_lists_the_turns_of_the_incident_in_order() -> None:
    assert [(m.at, m.text) for m in _report().moments] == [
        (0.0, "the slowest second: p99 100 ms"),
        (5.0, "the run's availability budget was spent"),
        (5.0, "the worst second: 50% of quotes failed"),
        (6.0, "the breaker opened: too many calls failed"),
        (6.0, "the 5 s burn rate crossed 14.4x, the fast-burn page threshold"),
    ]


def test_summary_rows_name_what_they_count() -> None:
    rows = {row.label: row for row in _report().rows}
    assert rows["quotes asked for"].value == "200"
    assert rows["error budget left"].value == "overspent 12.5x"
    assert rows["breaker transitions"].value == "opened at 6.0 s (failure_rate)"
    assert "not_retryable" not in json.dumps([r.value for r in rows.values()])


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def test_the_page_is_self_contained_and_escapes_everything() -> None:
    page = render_html(_report(reason='<script>alert("x")</script>'))
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert parser.tags.count("svg") == 14
    # Nothing to fetch: no src or href, no URL but the SVG namespace.
    assert not [name for name, _ in parser.attrs if name in {"src", "href"}]
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "Content-Security-Policy" in page
    assert "default-src &#x27;none&#x27;" in page


def test_an_empty_run_still_renders() -> None:
    summary, _ = _run()
    empty = DemoStats(objective=0.99, clock=FakeClock())
    report = build_report(
        {**summary, "breaker_transitions": []}, timeline(empty), [], duration=60, started_at="now"
    )
    page = render_html(report)
    assert report.waterfalls == ()
    assert "No quote was retried in this run" in page
    assert page.count('<svg class="chart"') == 12


def test_the_breaker_story_keeps_openings_and_closings() -> None:
    def move(at: float, old: str, new: str, reason: str) -> dict[str, Any]:
        return {"at_seconds": at, "from": old, "to": new, "reason": reason}

    transitions = [
        move(1.0, "closed", "open", "failure_rate"),
        move(3.0, "open", "half_open", "reset_timeout"),
        move(3.1, "half_open", "open", "half_open_failure"),
        move(5.0, "open", "half_open", "reset_timeout"),
        move(5.1, "half_open", "closed", "half_open_success"),
        move(8.0, "closed", "open", "slow_call_rate"),
        move(10.0, "open", "half_open", "reset_timeout"),
        move(10.1, "half_open", "open", "half_open_failure"),
    ]
    assert breaker_story(transitions) == (
        "opened at 1.0 s (failure_rate); closed at 5.1 s after 1 failed probe; "
        "opened at 8.0 s (slow_call_rate); 1 failed probe since"
    )
    assert breaker_story([]) == "none"


def test_a_chart_reaches_below_zero_for_an_overspent_budget() -> None:
    budget = next(c for c in _report().charts() if c.key == "error-budget")
    svg = line_chart(budget, (), 20.0)
    lowest = min(v for s in budget.series for _, v in s.points)
    assert lowest < -1000
    labels = [float(t) for t in re.findall(r'text-anchor="end">(-?[0-9.]+)</text>', svg)]
    assert min(labels) <= lowest
    assert max(labels) >= 100


@pytest.mark.parametrize(
    ("span", "step"), [(10, 2.0), (60, 20.0), (450, 100.0), (0.8, 0.2), (0, 1.0), (7, 2.0)]
)
def test_nice_steps(span: float, step: float) -> None:
    assert nice_step(span) == pytest.approx(step)
