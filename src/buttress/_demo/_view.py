"""The live view: a rich table on a terminal, plain periodic lines anywhere else."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._scenario import Phase
    from ._stats import DemoStats


class View(Protocol):
    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None: ...
    def close(self) -> None: ...


def budget_text(stats: DemoStats) -> str:
    """The error budget left, or how far it is overspent."""
    left = stats.budget_left()
    if left >= 0:
        return f"budget left {left:6.1%}"
    return f"budget spent {1 - left:5.1f}x"


def summary_line(stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> str:
    """One line with every figure the view shows, for logs and non-interactive terminals."""
    rejected = _fmt(stats.rejections) or "none"
    p50, p99 = stats.latency_quantile(0.5) * 1e3, stats.latency_quantile(0.99) * 1e3
    return (
        f"[{elapsed:5.1f}/{duration:.0f}s] {phase.mode:<7} "
        f"rps {stats.rate():6.1f}  err {stats.error_ratio():6.1%}  "
        f"p50 {p50:6.1f}ms p99 {p99:7.1f}ms  "
        f"burn {stats.burn_rate():5.1f}x {budget_text(stats)}  "
        f"breaker {stats.breaker_state:<9} "
        f"bulkhead {stats.bulkhead_in_use}/{stats.bulkhead_capacity}  "
        f"retries {stats.retries}  rejected {rejected}"
    )


class PlainView:
    """Prints :func:`summary_line` every ``every`` seconds, and the last state on close."""

    def __init__(self, *, every: float = 2.0) -> None:
        self._every = every
        self._last = -every
        self._pending: str | None = None

    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None:
        line = summary_line(stats, phase, elapsed, duration)
        if elapsed - self._last >= self._every:
            self._last = elapsed
            print(line, flush=True)
            self._pending = None
        else:
            self._pending = line

    def close(self) -> None:
        if self._pending is not None:
            print(self._pending, flush=True)


class RichView:
    """A live-updating panel; rich is imported only when this view is used."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console()
        self._live = Live(console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, stats: DemoStats, phase: Phase, elapsed: float, duration: float) -> None:
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        burn = stats.burn_rate()
        burn_style = "red" if burn >= 14.4 else "yellow" if burn >= 1 else "green"
        breaker_style = {"closed": "green", "half_open": "yellow"}.get(stats.breaker_state, "red")
        rows = [
            ("phase", f"{phase.title}"),
            ("time", f"{elapsed:5.1f} s of {duration:.0f} s"),
            ("requests", f"{stats.rate():.1f}/s  ({stats.requests} in all)"),
            ("errors", f"{stats.error_ratio():.1%} over 5 s  ({stats.errors} in all)"),
            (
                "latency",
                f"p50 {stats.latency_quantile(0.5) * 1e3:.1f} ms   "
                f"p95 {stats.latency_quantile(0.95) * 1e3:.1f} ms   "
                f"p99 {stats.latency_quantile(0.99) * 1e3:.1f} ms",
            ),
            (
                "SLO",
                f"[{burn_style}]burn {burn:.1f}x[/] over 30 s   "
                f"{budget_text(stats)}   (objective {stats.objective:.1%})",
            ),
            (
                "breaker",
                f"[{breaker_style}]{stats.breaker_state}[/]  {len(stats.transitions)} transitions",
            ),
            (
                "bulkhead",
                f"{stats.bulkhead_in_use}/{stats.bulkhead_capacity} in use "
                f"(peak {stats.bulkhead_peak})",
            ),
            ("retries", f"{stats.retries} scheduled   {_fmt(stats.retry_outcomes)}"),
            ("rejected", _fmt(stats.rejections) or "none"),
            ("timeouts", f"{stats.timeouts}   fallbacks {stats.fallbacks}"),
        ]
        for label, value in rows:
            table.add_row(label, value)
        for at, old, new, reason in stats.transitions[-4:]:
            table.add_row("", f"[dim]{at:5.1f}s {old} -> {new} ({reason})[/]")
        self._live.update(Panel(table, title="buttress demo", subtitle="Ctrl-C stops"))

    def close(self) -> None:
        self._live.stop()


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def make_view(plain: bool) -> View:
    """The rich view on an interactive terminal, unless plain lines were asked for."""
    if plain or not sys.stdout.isatty():
        return PlainView()
    return RichView()
