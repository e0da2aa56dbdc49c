"""The incident report's content, without any markup: charts, phases, traces and figures.

:func:`build_report` turns the run's one-second samples, its summary and its spans into a
:class:`Report`; ``_report_html`` draws it. Chart titles are those of the Grafana
dashboards' panels, so a reader who knows the dashboards recognises each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._report_traces import SpanRecord, Waterfall, waterfalls
from ._scenario import PHASES
from ._timeline import LONG_WINDOW, PAGE_BURN_RATE, SHORT_WINDOW, Sample
from ._wording import CALL_OUTCOMES, counts_text, overspent

ChartKind = Literal["line", "states"]


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (seconds into the run, value)
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # a stable id: the page's element id and the test's handle
    title: str  # the Grafana panel it mirrors
    reading: str  # how to read it, in a sentence
    unit: str
    series: tuple[Series, ...]
    thresholds: tuple[Threshold, ...] = ()
    kind: ChartKind = "line"


@dataclass(frozen=True, slots=True)
class Section:
    dashboard: str
    charts: tuple[Chart, ...]


@dataclass(frozen=True, slots=True)
class Band:
    """A phase of the scenario, in seconds into the run."""

    start: float
    end: float
    mode: str
    title: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A breaker transition, drawn on the time axis of every chart."""

    at: float
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    value: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Moment:
    """A turn of the incident worth a line in its timeline."""

    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    subtitle: str
    duration: float
    bands: tuple[Band, ...]
    marks: tuple[Mark, ...]
    sections: tuple[Section, ...]
    waterfalls: tuple[Waterfall, ...]
    rows: tuple[Row, ...]
    moments: tuple[Moment, ...] = ()
    notes: tuple[str, ...] = ()  # what the run could not show, and why

    def charts(self) -> list[Chart]:
        return [chart for section in self.sections for chart in section.charts]


# --- building ------------------------------------------------------------------------------


def build_report(
    summary: Mapping[str, Any],
    samples: Sequence[Sample],
    spans: Iterable[SpanRecord],
    *,
    duration: float,
    started_at: str,
) -> Report:
    """The report of one run: ``summary`` as written to summary.json, ``samples`` from
    :func:`~._timeline.timeline`, ``spans`` every finished span."""
    length = float(len(samples)) if samples else 0.0
    bands = tuple(
        Band(p.start * duration, min(p.end * duration, length), p.mode, p.title)
        for p in PHASES
        if p.start * duration < length
    )
    marks = tuple(
        Mark(t["at_seconds"], t["from"], t["to"], t["reason"])
        for t in summary["breaker_transitions"]
    )
    stopped = " (stopped early by Ctrl-C)" if summary["interrupted"] else ""
    traces = waterfalls(spans)
    keys = {trace.key for trace in traces}
    notes = tuple(
        note
        for key, note in (
            ("trace-slowest", "No quote reached pricing in this run: there is no trace to show."),
            ("trace-retried", "No quote was retried in this run: there is no retry to show."),
        )
        if key not in keys
    )
    return Report(
        title="buttress demo: incident report",
        subtitle=f"{started_at}: {length:.0f} s of traffic{stopped}",
        duration=length,
        bands=bands,
        marks=marks,
        sections=_sections(summary, samples),
        waterfalls=traces,
        rows=_rows(summary),
        moments=moments(summary, samples),
        notes=notes,
    )


_REASONS = {
    "failure_rate": "too many calls failed",
    "slow_call_rate": "too many calls were slow",
    "consecutive_failures": "too many failures in a row",
}


def moments(summary: Mapping[str, Any], samples: Sequence[Sample]) -> tuple[Moment, ...]:
    """The incident's timeline: the breaker opening and closing, the worst second, the
    moment the page threshold was crossed and the moment each budget ran out."""
    found: list[Moment] = []
    for t in summary["breaker_transitions"]:
        if t["to"] == "open" and t["from"] != "half_open":
            why = _REASONS.get(t["reason"], t["reason"])
            found.append(Moment(t["at_seconds"], f"the breaker opened: {why}"))
        elif t["to"] == "closed":
            found.append(Moment(t["at_seconds"], "the breaker closed again: its probes succeeded"))

    def first(test: Any, text: str) -> None:
        hit = next((s for s in samples if test(s)), None)
        if hit is not None:
            found.append(Moment(float(hit.at), text))

    first(
        lambda s: s.burn_short >= PAGE_BURN_RATE,
        f"the {SHORT_WINDOW} s burn rate crossed {PAGE_BURN_RATE:g}x, the fast-burn page threshold",
    )
    first(lambda s: s.budget_left < 0, "the run's availability budget was spent")
    first(lambda s: s.latency_budget_left < 0, "the run's latency budget was spent")
    worst = max(samples, key=lambda s: s.error_ratio, default=None)
    if worst is not None and worst.errors:
        found.append(
            Moment(float(worst.at), f"the worst second: {worst.error_ratio:.0%} of quotes failed")
        )
    slowest = max(samples, key=lambda s: s.p99, default=None)
    if slowest is not None and slowest.requests:
        found.append(
            Moment(float(slowest.at), f"the slowest second: p99 {slowest.p99 * 1e3:.0f} ms")
        )
    return tuple(sorted(found, key=lambda m: m.at))


def _points(samples: Sequence[Sample], value: Any) -> tuple[tuple[float, float], ...]:
    # Each second is drawn at its middle: the sample covers [at, at + 1).
    return tuple((s.at + 0.5, float(value(s))) for s in samples)


def _sections(summary: Mapping[str, Any], samples: Sequence[Sample]) -> tuple[Section, ...]:
    objective = summary["slo_objective"]
    allowed = (1 - objective) * 100
    reasons = sorted({reason for s in samples for reason in s.retries})
    capacity = summary["bulkhead_capacity"]
    service = Section(
        "buttress / Service",
        (
            Chart(
                "request-rate",
                "Request rate by route",
                "Quotes per second the traffic generator sent to checkout, as it saw them.",
                "req/s",
                (Series("/quote/{sku}", _points(samples, lambda s: s.requests)),),
            ),
            Chart(
                "error-ratio",
                "Server error ratio by route",
                "Share of quotes answered with a 5xx (or not at all). The dashed line is "
                "what the availability SLO allows.",
                "%",
                (Series("/quote/{sku}", _points(samples, lambda s: s.error_ratio * 100)),),
                (Threshold(allowed, f"SLO allows {allowed:g} %"),),
            ),
            Chart(
                "latency",
                "Latency p50 / p95 / p99",
                "How long quotes took, per second. Above the dashed line a quote spends the "
                "latency SLO's budget.",
                "ms",
                (
                    Series("p50", _points(samples, lambda s: s.p50 * 1e3)),
                    Series("p95", _points(samples, lambda s: s.p95 * 1e3)),
                    Series("p99", _points(samples, lambda s: s.p99 * 1e3)),
                ),
                (Threshold(summary["latency_threshold_seconds"] * 1e3, "latency SLO"),),
            ),
            Chart(
                "outbound-rate",
                "Outbound request rate by server",
                "Calls pricing received per second (retries and breaker probes included) "
                "beside the quotes asked for: retries stay a small share, and while the "
                "breaker is open pricing is spared.",
                "req/s",
                (
                    Series("pricing", _points(samples, lambda s: s.upstream_calls)),
                    Series("quotes", _points(samples, lambda s: s.requests), dashed=True),
                ),
            ),
        ),
    )
    slos = Section(
        "buttress / SLOs",
        (
            Chart(
                "burn-rate",
                "Burn rate per window",
                f"How fast the error budget burns: 1x spends exactly the budget over the "
                f"SLO's period, {PAGE_BURN_RATE:g}x is the fast-burn page. The demo's "
                f"{SHORT_WINDOW} s and {LONG_WINDOW} s windows stand in for the rules' 5m and 1h.",
                "x",
                (
                    Series(
                        f"availability {SHORT_WINDOW} s", _points(samples, lambda s: s.burn_short)
                    ),
                    Series(
                        f"availability {LONG_WINDOW} s", _points(samples, lambda s: s.burn_long)
                    ),
                    Series(
                        f"latency {LONG_WINDOW} s", _points(samples, lambda s: s.latency_burn_long)
                    ),
                ),
                (Threshold(PAGE_BURN_RATE, "page"), Threshold(1.0, "1x")),
            ),
            Chart(
                "error-budget",
                "Error budget burn-down",
                f"The share of the run's budget left ({allowed:g} % of quotes may fail, or be "
                "slow), counted over every quote so far. Below zero it is overspent.",
                "%",
                (
                    Series("availability", _points(samples, lambda s: s.budget_left * 100)),
                    Series("latency", _points(samples, lambda s: s.latency_budget_left * 100)),
                ),
                (Threshold(0.0, "spent"),),
            ),
        ),
    )
    resilience = Section(
        "buttress / Resilience",
        (
            Chart(
                "breaker-state",
                "Breaker state",
                "The pricing breaker: closed lets calls through, open refuses them at once, "
                "half-open lets a few trial calls probe pricing. Each change is marked.",
                "",
                (Series("state", _points(samples, lambda s: _STATE_LEVEL[s.breaker_state])),),
                kind="states",
            ),
            Chart(
                "breaker-rejections",
                "Breaker rejections",
                "Calls to pricing refused by the open breaker, per second: they never reached "
                "pricing, and the fallback answered them.",
                "calls/s",
                (Series("refused", _points(samples, lambda s: s.refused_by_breaker)),),
            ),
            Chart(
                "bulkhead",
                "Bulkhead saturation",
                "The most calls to pricing in flight at once, each second, against the "
                "bulkhead's limit (dashed); calls past it wait, then are refused.",
                "calls",
                (
                    Series("in use (peak)", _points(samples, lambda s: s.bulkhead_peak)),
                    Series("refused", _points(samples, lambda s: s.refused_by_bulkhead)),
                ),
                (Threshold(float(capacity), "limit"),) if capacity else (),
            ),
            Chart(
                "retries",
                "Retries by error type",
                "Attempts tried again per second, by what went wrong. The retry budget keeps "
                "them a small share of calls, so an outage is not multiplied.",
                "retries/s",
                tuple(
                    Series(reason, _points(samples, lambda s, r=reason: s.retries.get(r, 0)))
                    for reason in reasons
                )
                or (Series("retries", _points(samples, lambda s: 0)),),
            ),
            Chart(
                "fallbacks",
                "Fallbacks",
                "Quotes answered from the last known price because the breaker refused the "
                "call: degraded, but not errors.",
                "answers/s",
                (Series("fallback", _points(samples, lambda s: s.fallbacks)),),
            ),
            Chart(
                "timeouts",
                "Timeouts",
                "Quotes answered 504 because pricing did not answer within the attempt's timeout.",
                "answers/s",
                (Series("504", _points(samples, lambda s: s.timeouts)),),
            ),
        ),
    )
    return service, slos, resilience


_STATE_LEVEL = {
    "closed": 0.0,
    "half_open": 1.0,
    "open": 2.0,
    "forced_open": 2.0,
    "forced_closed": 0.0,
}


def _rows(summary: Mapping[str, Any]) -> tuple[Row, ...]:
    requests = summary["requests"]
    statuses = ", ".join(f"{code}: {n}" for code, n in summary["statuses"].items()) or "none"
    transitions = summary["breaker_transitions"]
    return (
        Row("quotes asked for", f"{requests}", "requests the traffic generator sent to checkout"),
        Row("answers by status", statuses, "0 means no answer at all"),
        Row(
            "error ratio",
            f"{summary['error_ratio']:.2%}",
            f"quotes answered 5xx or not at all; the SLO allows {1 - summary['slo_objective']:.1%}",
        ),
        Row(
            "error budget left",
            _budget(summary["error_budget_left"]),
            f"availability SLO ({summary['slo_objective']:.1%} of quotes succeed), over this run",
        ),
        Row(
            "latency budget left",
            _budget(summary["latency_budget_left"]),
            f"latency SLO ({summary['slo_objective']:.1%} of quotes within "
            f"{summary['latency_threshold_seconds'] * 1e3:.0f} ms), over this run",
        ),
        Row(
            "calls pricing received",
            f"{summary['upstream_calls']} ({summary['amplification']:.2f} per quote)",
            "attempts, retries and breaker probes; below 1 per quote while the breaker spares it",
        ),
        Row(
            "calls to pricing, by how they ended",
            counts_text(summary["calls_by_outcome"], CALL_OUTCOMES) or "none",
            "one per quote: the retry's view, after every attempt",
        ),
        Row("retries", f"{summary['retries']}", "attempts tried again after a failure"),
        Row(
            "refused by the open breaker",
            f"{summary['refused_by_open_breaker']}",
            "attempts the breaker refused without calling pricing",
        ),
        Row(
            "refused by the full bulkhead",
            f"{summary['refused_by_full_bulkhead']}",
            "attempts refused because too many calls were in flight",
        ),
        Row(
            "timeouts",
            f"{summary['timeouts']}",
            "quotes answered 504: pricing did not answer in time",
        ),
        Row(
            "fallback answers",
            f"{summary['fallbacks']}",
            "quotes answered from the last known price while the breaker was open",
        ),
        Row(
            "bulkhead peak",
            f"{summary['bulkhead_peak']} of {summary['bulkhead_capacity']}",
            "most calls to pricing in flight at once",
        ),
        Row(
            "breaker transitions",
            breaker_story(transitions),
            f"{len(transitions)} in all (every one is in summary.json); a failed probe sends "
            "the breaker from half-open back to open",
        ),
    )


def breaker_story(transitions: Sequence[Mapping[str, Any]]) -> str:
    """When the breaker opened and closed again, and how many probes failed meanwhile.

    Half-open probes can make dozens of moves in a minute; the story keeps the ones a
    reader acts on: opened (and why), closed again.
    """
    parts: list[str] = []
    failed_probes = 0
    for t in transitions:
        if t["from"] == "half_open" and t["to"] == "open":
            failed_probes += 1
        elif t["to"] == "open":
            parts.append(f"opened at {t['at_seconds']:.1f} s ({t['reason']})")
        elif t["to"] == "closed":
            probes = f" after {_probes(failed_probes)}" if failed_probes else ""
            parts.append(f"closed at {t['at_seconds']:.1f} s{probes}")
            failed_probes = 0
    if failed_probes:
        parts.append(f"{_probes(failed_probes)} since")
    return "; ".join(parts) or "none"


def _probes(count: int) -> str:
    return f"{count} failed probe" + ("s" if count != 1 else "")


def _budget(left: float) -> str:
    return f"{left:.1%}" if left >= 0 else overspent(left)
