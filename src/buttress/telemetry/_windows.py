"""The alert windows of an SLO period: the SRE workbook's four conditions, scaled to the period.

The workbook gives its thresholds for a 30-day period as shares of the error budget spent
in a long window: 2% in 1h (page), 5% in 6h (page), 10% in 1d (ticket), 10% in 3d
(ticket). A burn rate of ``share * period / long window`` spends exactly that share, so
for 30 days the factors are 14.4, 6, 3 and 1; for 28 days 13.44, 5.6, 2.8 and 0.933.
Sloth derives its factors the same way (``errorBudgetPercent`` of its window catalog).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SLI_WINDOWS", "BurnWindow", "burn_windows", "prometheus_duration"]

# Every window an SLI ratio is recorded over, besides the period itself.
SLI_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

_SECONDS: Final = {"m": 60, "h": 3600, "d": 86400}
# (severity, Alertmanager severity, budget share, long window, short window)
_WORKBOOK: Final = (
    ("page", "critical", 0.02, "1h", "5m"),
    ("page", "critical", 0.05, "6h", "30m"),
    ("ticket", "warning", 0.10, "1d", "2h"),
    ("ticket", "warning", 0.10, "3d", "6h"),
)
LONGEST_WINDOW_DAYS: Final = 3


def window_seconds(window: str) -> int:
    """Seconds in a window written as ``5m``, ``6h`` or ``3d``."""
    return int(window[:-1]) * _SECONDS[window[-1]]


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """One alert condition: the error ratio over ``long`` and ``short`` over ``factor`` x budget."""

    severity: str  # sloth_severity: "page" or "ticket"
    alert_severity: str  # the conventional Alertmanager "severity" label
    budget_share: float  # share of the period's budget this burn spends in ``long``
    factor: float
    long: str
    short: str


def burn_windows(period_days: int) -> tuple[BurnWindow, ...]:
    """The four conditions for a period of ``period_days``, factors scaled to it."""
    period = period_days * 86400
    return tuple(
        BurnWindow(
            severity,
            alert_severity,
            share,
            # Rounded so 30 days reads 14.4, not 14.399999999999999.
            float(f"{share * period / window_seconds(long):.6g}"),
            long,
            short,
        )
        for severity, alert_severity, share, long, short in _WORKBOOK
    )


def prometheus_duration(days: int) -> str:
    """``days`` as Prometheus (and so Sloth) prints a duration: 30d, 4w, 1w, 1y, 90d.

    Years and weeks are used only when they divide the duration exactly.
    """
    if days % 365 == 0:
        return f"{days // 365}y"
    if days % 7 == 0:
        return f"{days // 7}w"
    return f"{days}d"
