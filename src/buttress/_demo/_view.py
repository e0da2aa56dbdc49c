"""The live view: a rich panel on a terminal, plain periodic lines anywhere else.

Both show the figures of the moment and sparklines of the same series the report charts:
the rich panel a trend column over the last minute, the plain view a short trend on each
line and the whole run's trends when it ends.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._sparkline import can_draw_blocks, sparkline
from ._timeline import LONG_WINDOW, timeline
from ._wording import CALL_OUTCOMES, REFUSALS, counts_text, overspent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from ._scenario import Phase
    from ._stats import DemoStats
    from ._timeline import Sample

_STATE_LEVEL = {"closed": 0.0, "half_open": 1.0, "open": 2.0, "forced_open": 2.0}


class View(Protocol):
    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Trend:
    label: str
    values: list[float]
    high: float | None
    peak: str  # the largest value, as text


def trends(samples: Sequence[Sample]) -> list[Trend]:
    """The sparkline series: the report's main charts, one line each."""

    def peak(values: list[float], unit: str, scale: float = 1.0) -> str:
        top = max(values, default=0.0) * scale
        return f"peak {top:.0f}{unit}" if unit != "x" else f"peak {top:.1f}x"

    rate = [float(s.requests) for s in samples]
    errors = [s.error_ratio for s in samples]
    p99 = [s.p99 for s in samples]
    burn = [s.burn_long for s in samples]
    states = [_STATE_LEVEL.get(s.breaker_state, 0.0) for s in samples]
    bulkhead = [float(s.bulkhead_peak) for s in samples]
    retries = [float(sum(s.retries.values())) for s in samples]
    fallbacks = [float(s.fallbacks) for s in samples]
    return [
        Trend("requests/s", rate, None, peak(rate, "/s")),
        Trend("errors", errors, 1.0, peak(errors, " %", 100)),
        Trend("p99 latency", p99, None, peak(p99, " ms", 1e3)),
        Trend(f"burn {LONG_WINDOW} s", burn, None, peak(burn, "x")),
        Trend("breaker", states, 2.0, "low closed, mid half-open, high open"),
        Trend("bulkhead", bulkhead, None, peak(bulkhead, " in use")),
        Trend("retries/s", retries, None, peak(retries, "/s")),
        Trend("fallbacks/s", fallbacks, None, peak(fallbacks, "/s")),
    ]


def budget_text(stats: DemoStats) -> str:
    """The error budget left, or how far it is overspent."""
    left = stats.budget_left()
    if left >= 0:
        return f"budget left {left:6.1%}"
    return f"budget {overspent(left)}"


def refused_text(stats: DemoStats) -> str:
    return counts_text(stats.rejections, REFUSALS) or "none refused"


def summary_line(stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> str:
    """One line with every figure the view shows, for logs and non-interactive terminals."""
    p50, p99 = stats.latency_quantile(0.5) * 1e3, stats.latency_quantile(0.99) * 1e3
    return (
        f"[{elapsed:5.1f}/{duration:.0f}s] {phase.mode:<7} "
        f"{stats.rate():5.1f} req/s  errors {stats.error_ratio():6.1%}  "
        f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"SLO burn {stats.burn_rate():5.1f}x, {budget_text(stats)}  "
        f"breaker {stats.breaker_state:<9} "
        f"bulkhead {stats.bulkhead_in_use}/{stats.bulkhead_capacity} in use  "
        f"retries {stats.retries}  {refused_text(stats)}"
    )


class PlainView:
    """Prints :func:`summary_line` and a short trend every ``every`` seconds; the last
    state and the run's trends on close."""

    def __init__(self, *, every: float = 2.0, ascii: bool | None = None) -> None:
        self._every = every
        self._last = -every
        self._pending: str | None = None
        self._stats: DemoStats | None = None
        self._ascii = not can_draw_blocks() if ascii is None else ascii

    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None:
        self._stats = stats
        line = summary_line(stats, phase, elapsed, duration)
        if elapsed - self._last >= self._every:
            self._last = elapsed
            recent = timeline(stats, last=10)
            errors = sparkline([s.error_ratio for s in recent], high=1.0, ascii=self._ascii)
            p99 = sparkline([s.p99 for s in recent], ascii=self._ascii)
            print(f"{line}  last 10 s: errors {errors:<10} p99 {p99:<10}", flush=True)
            self._pending = None
        else:
            self._pending = line

    def close(self) -> None:
        if self._pending is not None:
            print(self._pending, flush=True)
        if self._stats is not None:
            print(self.trends_block(timeline(self._stats)), flush=True)

    def trends_block(self, samples: Sequence[Sample]) -> str:
        width = 60
        per = max(1, -(-len(samples) // width))
        lines = [f"trends over the run ({len(samples)} s, {per} s per mark):"]
        pad = min(width, len(samples))
        for trend in trends(samples):
            line = sparkline(trend.values, width=width, high=trend.high, ascii=self._ascii)
            lines.append(f"  {trend.label:<12} {line:<{pad}}  {trend.peak}")
        return "\n".join(lines)


class RichView:
    """A live-updating panel; rich is imported only when this view is used."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = console if console is not None else Console()
        self._ascii = not can_draw_blocks(self._console.file)
        self._live = Live(console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None:
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_column(style="cyan", no_wrap=True)
        lines = {
            t.label: sparkline(t.values, width=40, high=t.high, ascii=self._ascii)
            for t in trends(timeline(stats, last=40))
        }
        burn = stats.burn_rate()
        burn_style = "red" if burn >= 14.4 else "yellow" if burn >= 1 else "green"
        breaker_style = {"closed": "green", "half_open": "yellow"}.get(stats.breaker_state, "red")
        rows = [
            ("phase", f"{phase.title}", ""),
            ("time", f"{elapsed:5.1f} s of {duration:.0f} s", "last 40 s"),
            ("requests", f"{stats.rate():.1f}/s  ({stats.requests} in all)", lines["requests/s"]),
            (
                "errors",
                f"{stats.error_ratio():.1%} over 5 s  ({stats.errors} in all)",
                lines["errors"],
            ),
            (
                "latency",
                f"p50 {stats.latency_quantile(0.5) * 1e3:.1f} ms   "
                f"p95 {stats.latency_quantile(0.95) * 1e3:.1f} ms   "
                f"p99 {stats.latency_quantile(0.99) * 1e3:.1f} ms",
                lines["p99 latency"],
            ),
            (
                "SLO",
                f"[{burn_style}]burn {burn:.1f}x[/] over {LONG_WINDOW} s   "
                f"{budget_text(stats)}   (objective {stats.objective:.1%})",
                lines[f"burn {LONG_WINDOW} s"],
            ),
            (
                "breaker",
                f"[{breaker_style}]{stats.breaker_state}[/]  {len(stats.transitions)} transitions",
                lines["breaker"],
            ),
            (
                "bulkhead",
                f"{stats.bulkhead_in_use}/{stats.bulkhead_capacity} in use "
                f"(peak {stats.bulkhead_peak})",
                lines["bulkhead"],
            ),
            ("retries", f"{stats.retries} attempts tried again", lines["retries/s"]),
            (
                "calls",
                counts_text(stats.call_outcomes, CALL_OUTCOMES) or "none yet",
                "",
            ),
            ("refused", refused_text(stats), ""),
            (
                "degraded",
                f"{stats.fallbacks} fallback answers   {stats.timeouts} timeouts (504)",
                lines["fallbacks/s"],
            ),
        ]
        for label, value, trend in rows:
            table.add_row(label, value, trend)
        for at, old, new, reason in stats.transitions[-4:]:
            table.add_row("", f"[dim]{at:5.1f}s {old} -> {new} ({reason})[/]", "")
        self._live.update(Panel(table, title="buttress demo", subtitle="Ctrl-C stops"))

    def close(self) -> None:
        self._live.stop()


def make_view(plain: bool) -> View:
    """The rich view on an interactive terminal, unless plain lines were asked for."""
    if plain or not sys.stdout.isatty():
        return PlainView()
    return RichView()
