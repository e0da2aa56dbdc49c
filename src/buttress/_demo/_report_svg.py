"""Inline SVG for the incident report: time-series charts, the breaker's state strip and
trace waterfalls, drawn here so the page needs nothing from the network.

Every piece of text goes through :func:`esc`; numbers are formatted by us. Styling lives in
the page's stylesheet (classes), so the markup stays small.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ._report_model import Band, Chart, Mark, Series
from ._report_traces import Waterfall

WIDTH = 560
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 14, 22, 26
_STATE_NAMES = ("closed", "half-open", "open")


def esc(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


def nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``ticks`` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


class _Frame:
    """The mapping from (seconds, value) to pixels for one chart."""

    def __init__(self, duration: float, low: float, high: float, height: int) -> None:
        self.duration = max(duration, 1.0)
        self.low, self.high = low, high
        self.width = WIDTH - _LEFT - _RIGHT
        self.height = height - _TOP - _BOTTOM
        self.bottom = height - _BOTTOM

    def x(self, seconds: float) -> float:
        return _LEFT + self.width * min(max(seconds, 0.0), self.duration) / self.duration

    def y(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return _TOP + self.height * (1 - (min(max(value, self.low), self.high) - self.low) / span)


def _bounds(chart: Chart) -> tuple[float, float]:
    values = [v for s in chart.series for _, v in s.points if math.isfinite(v)]
    values += [t.value for t in chart.thresholds]
    low, high = min(values, default=0.0), max(values, default=1.0)
    low = min(low, 0.0)
    if high <= low:
        high = low + 1.0
    step = nice_step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _bands(frame: _Frame, bands: Sequence[Band]) -> list[str]:
    return [
        f'<rect class="band band-{esc(b.mode)}" x="{frame.x(b.start):.1f}" y="{_TOP}" '
        f'width="{max(frame.x(b.end) - frame.x(b.start), 0):.1f}" height="{frame.height}">'
        f"<title>{esc(b.title)}</title></rect>"
        for b in bands
    ]


def _time_axis(frame: _Frame) -> list[str]:
    parts = [
        f'<line class="axis" x1="{_LEFT}" y1="{frame.bottom}" x2="{WIDTH - _RIGHT}" '
        f'y2="{frame.bottom}"/>'
    ]
    step = nice_step(frame.duration, 6)
    tick = 0.0
    while tick <= frame.duration + 1e-9:
        x = frame.x(tick)
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{frame.bottom}" x2="{x:.1f}" '
            f'y2="{frame.bottom + 4}"/><text class="label" x="{x:.1f}" y="{frame.bottom + 16}" '
            f'text-anchor="middle">{_fmt(tick)} s</text>'
        )
        tick += step
    return parts


def _value_axis(frame: _Frame, unit: str) -> list[str]:
    parts = []
    step = nice_step(frame.high - frame.low)
    value = frame.low
    while value <= frame.high + step * 1e-6:
        y = frame.y(value)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}"/>'
            f'<text class="label" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
        value += step
    if unit:
        parts.append(
            f'<text class="unit" x="{_LEFT}" y="{_TOP - 9}" text-anchor="start">{esc(unit)}</text>'
        )
    return parts


def _path(frame: _Frame, series: Series, index: int) -> str:
    points = series.points
    if len(points) == 1:  # one second is still a line across it
        at, value = points[0]
        points = ((at - 0.5, value), (at + 0.5, value))
    d = " ".join(
        f"{'M' if i == 0 else 'L'}{frame.x(at):.1f},{frame.y(value):.1f}"
        for i, (at, value) in enumerate(points)
    )
    peak_at, peak = max(points, key=lambda p: p[1]) if points else (0.0, 0.0)
    dashed = " dashed" if series.dashed else ""
    return (
        f'<path class="series s{index % 6}{dashed}" data-series="{esc(series.label)}" d="{d}">'
        f"<title>{esc(series.label)}: peak {_fmt(peak)} at {peak_at:.0f} s</title></path>"
    )


def line_chart(chart: Chart, bands: Sequence[Band], duration: float) -> str:
    """A time-series chart: phases shaded behind, thresholds dashed, one path per series."""
    low, high = _bounds(chart)
    frame = _Frame(duration, low, high, HEIGHT)
    parts = _bands(frame, bands) + _value_axis(frame, chart.unit)
    for threshold in chart.thresholds:
        y = frame.y(threshold.value)
        parts.append(
            f'<line class="threshold" x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" '
            f'y2="{y:.1f}"/><text class="threshold-label" x="{WIDTH - _RIGHT - 2}" '
            f'y="{y - 3:.1f}" text-anchor="end">{esc(threshold.label)}</text>'
        )
    parts += [_path(frame, s, i) for i, s in enumerate(chart.series)]
    parts += _time_axis(frame)
    return _svg(chart, HEIGHT, parts)


def state_chart(chart: Chart, bands: Sequence[Band], marks: Sequence[Mark], duration: float) -> str:
    """The breaker's state as three lanes over time, every transition marked."""
    frame = _Frame(duration, -0.5, 2.5, HEIGHT)
    parts = _bands(frame, bands)
    for level, name in enumerate(_STATE_NAMES):
        y = frame.y(level)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}"/>'
            f'<text class="label" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{name}</text>'
        )
    # Exact times from the transitions, not the per-second samples: a breaker that opens
    # and closes within one second still shows both moves.
    steps = [(0.0, "closed")] + [(m.at, m.new) for m in marks]
    lanes = {"closed": 0, "half_open": 1, "open": 2, "forced_open": 2, "forced_closed": 0}
    d = []
    for i, (at, state) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else frame.duration
        y = frame.y(lanes.get(state, 0))
        x0, x1 = frame.x(at), frame.x(end)
        d.append(f"{'M' if i == 0 else 'L'}{x0:.1f},{y:.1f} L{x1:.1f},{y:.1f}")
        parts.append(
            f'<rect class="state state-{esc(state)}" x="{x0:.1f}" y="{y - 7:.1f}" '
            f'width="{max(x1 - x0, 0.8):.1f}" height="14"/>'
        )
    parts.append(f'<path class="series s0 step" data-series="state" d="{" ".join(d)}"/>')
    for mark in marks:
        x = frame.x(mark.at)
        parts.append(
            f'<line class="mark mark-{esc(mark.new)}" x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" '
            f'y2="{frame.bottom}"><title>{mark.at:.1f} s: {esc(mark.old)} -&gt; '
            f"{esc(mark.new)} ({esc(mark.reason)})</title></line>"
        )
    parts += _time_axis(frame)
    return _svg(chart, HEIGHT, parts)


def _svg(chart: Chart, height: int, parts: list[str]) -> str:
    return (
        f'<svg class="chart" id="chart-{esc(chart.key)}" data-kind="{esc(chart.kind)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="{esc(chart.title)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )


# --- waterfalls ----------------------------------------------------------------------------

WATERFALL_WIDTH = 1140
_ROW = 24
_LABEL = 380


def waterfall(trace: Waterfall) -> str:
    """One row per span, indented by depth, bars on a shared millisecond axis."""
    plot = WATERFALL_WIDTH - _LABEL - 150
    total = max(trace.total_ms, 0.001)
    height = _TOP + _ROW * len(trace.bars) + 30
    parts = []
    step = nice_step(total, 8)
    tick = 0.0
    while tick <= total + 1e-9:
        x = _LABEL + plot * tick / total
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{height - 24}"/>'
            f'<text class="label" x="{x:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{_fmt(tick)} ms</text>"
        )
        tick += step
    for row, bar in enumerate(trace.bars):
        y = _TOP + row * _ROW
        x = _LABEL + plot * bar.start_ms / total
        width = max(plot * bar.duration_ms / total, 1.5)
        failed = " failed" if bar.failed else ""
        detail = esc(bar.detail)
        # The detail goes right of the bar when it fits, else inside a wide bar, else left.
        text_width = 6.2 * len(bar.detail)
        kind = "span-detail"
        if x + width + 6 + text_width <= WATERFALL_WIDTH:
            where = f'x="{x + width + 6:.1f}"'
        elif width > text_width + 12:
            where, kind = f'x="{x + width - 6:.1f}" text-anchor="end"', "span-detail inside"
        else:
            where = f'x="{x - 6:.1f}" text-anchor="end"'
        parts.append(
            f'<g class="span span-{esc(bar.kind)}{failed}" data-service="{esc(bar.service)}">'
            f'<text class="span-label" x="{8 + 16 * bar.depth}" y="{y + 16}">'
            f"{esc(bar.label)}</text>"
            f'<rect class="span-bar service-{esc(bar.service)}" x="{x:.1f}" y="{y + 4}" '
            f'width="{width:.1f}" height="{_ROW - 8}" rx="2"><title>{detail}</title></rect>'
            f'<text class="{kind}" {where} y="{y + 16}">{detail}</text>'
            "</g>"
        )
    return (
        f'<svg class="chart waterfall" id="chart-{esc(trace.key)}" data-kind="waterfall" '
        f'viewBox="0 0 {WATERFALL_WIDTH} {height}" width="{WATERFALL_WIDTH}" height="{height}" '
        f'role="img" aria-label="{esc(trace.title)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )
