"""The SLO dashboard: SLI, error budget remaining, burn rate per window, alert state.

It reads the recording rules ``buttress rules`` writes (Sloth's names), so it also shows
SLOs whose rules Sloth generated.
"""

from __future__ import annotations

from typing import Any, Final

from ..telemetry import _names as n
from ..telemetry._windows import SLI_WINDOWS
from ._grafana import (
    Panel,
    alert_annotation,
    dashboard,
    dashboard_link,
    datasource_variable,
    query_variable,
    selector,
)
from ._grafana import variable_matcher as var

UID: Final = "buttress-slo"

_SLO: Final = selector(var(n.LABEL_SLO_SERVICE, "service"), var(n.LABEL_SLO_NAME, "slo"))
_KEYS: Final = f"{n.LABEL_SLO_SERVICE}, {n.LABEL_SLO_NAME}"
_LEGEND: Final = f"{{{{{n.LABEL_SLO_SERVICE}}}}} / {{{{{n.LABEL_SLO_NAME}}}}}"
_BURN_THRESHOLDS: Final = [("green", None), ("yellow", 1.0), ("orange", 6.0), ("red", 14.4)]
_BUDGET_THRESHOLDS: Final = [("red", None), ("orange", 0.0), ("yellow", 0.25), ("green", 0.5)]


def _per_slo(metric: str) -> str:
    return f"max by ({_KEYS}) ({metric}{_SLO})"


def _burn_rate(window: str) -> str:
    # The window's error ratio over the SLO's error budget: 1 spends it exactly on time.
    ratio = f"{n.SLO_SLI_ERROR_RATIO}{window}{_SLO}"
    return f"{_per_slo_expr(ratio)}\n/ on ({_KEYS})\n{_per_slo(n.SLO_ERROR_BUDGET)}"


def _per_slo_expr(expr: str) -> str:
    return f"max by ({_KEYS}) ({expr})"


# A series' labels in a time series panel, a row's fields in a table.
_TO_SERVICE: Final = dashboard_link(
    "buttress-service", "Service dashboard", job="${__field.labels.sloth_service}"
)
_ROW_TO_SERVICE: Final = dashboard_link(
    "buttress-service", "Service dashboard", job="${__data.fields.sloth_service}"
)
_TO_SLO: Final = dashboard_link(
    "buttress-slo",
    "This SLO",
    service="${__data.fields.sloth_service}",
    slo="${__data.fields.sloth_slo}",
)


def _events(record: str, window: str) -> str:
    return f"sum by ({_KEYS}) ({record}{window}{_SLO})"


def _alerts(severity: str) -> str:
    # Matched by sloth_severity, not by name: Sloth's alerts and renamed ones count too.
    alerts = n.PROMETHEUS_ALERTS + selector(
        (n.LABEL_ALERT_STATE, "=", "firing"),
        (n.LABEL_SLO_SEVERITY, "=", severity),
        var(n.LABEL_SLO_SERVICE, "service"),
        var(n.LABEL_SLO_NAME, "slo"),
    )
    # "or vector(0)": no series means no alert, shown as 0 rather than "no data".
    return f"count ({alerts}) or vector(0)"


def _absent() -> str:
    alerts = n.PROMETHEUS_ALERTS + selector(
        (n.LABEL_ALERT_NAME, "=", n.ALERT_SLO_METRIC_ABSENT),
        (n.LABEL_ALERT_STATE, "=", "firing"),
        var(n.LABEL_SLO_SERVICE, "service"),
        var(n.LABEL_SLO_NAME, "slo"),
    )
    return f"count ({alerts}) or vector(0)"


def _overview() -> Panel:
    period_sli = (
        f"1 - (\n{_per_slo(n.SLO_PERIOD_BURN_RATE)}\n* on ({_KEYS})\n"
        f"{_per_slo(n.SLO_ERROR_BUDGET)}\n)"
    )
    return Panel(
        "table",
        "All SLOs",
        "Every SLO now: objective, SLI and budget left over its period, burn rate over 5m. "
        "A row links to that SLO.",
        [
            (_per_slo(n.SLO_OBJECTIVE), "objective"),
            (period_sli, "SLI over the period"),
            (_per_slo(n.SLO_PERIOD_BUDGET_REMAINING), "budget left"),
            (_per_slo(n.SLO_CURRENT_BURN_RATE), "burn now"),
        ],
        "percentunit",
        width=24,
        height=7,
        instant=True,
        minimum=None,
        links=[_TO_SLO, _ROW_TO_SERVICE],
    )


def build() -> dict[str, Any]:
    period_ratio = (
        f"{_per_slo(n.SLO_PERIOD_BURN_RATE)}\n* on ({_KEYS})\n{_per_slo(n.SLO_ERROR_BUDGET)}"
    )
    alert_thresholds = [("green", None), ("red", 1.0)]
    summary = [
        Panel(
            "stat",
            "Objective",
            "The share of good requests the SLO promises.",
            [(_per_slo(n.SLO_OBJECTIVE), _LEGEND)],
            "percentunit",
            width=4,
            height=5,
        ),
        Panel(
            "stat",
            "SLI over the period",
            "Share of good requests over the SLO period (30 days unless set otherwise).",
            [(f"1 - (\n{period_ratio}\n)", _LEGEND)],
            "percentunit",
            width=5,
            height=5,
            minimum=None,
        ),
        Panel(
            "gauge",
            "Error budget remaining",
            "Share of the period's error budget left; below 0 the SLO is missed.",
            [(_per_slo(n.SLO_PERIOD_BUDGET_REMAINING), _LEGEND)],
            "percentunit",
            width=5,
            height=5,
            thresholds=_BUDGET_THRESHOLDS,
            minimum=None,
            maximum=1,
        ),
        Panel(
            "stat",
            "Burn rate now",
            "Error ratio over 5m divided by the error budget.",
            [(_per_slo(n.SLO_CURRENT_BURN_RATE), _LEGEND)],
            "x",
            width=4,
            height=5,
            thresholds=_BURN_THRESHOLDS,
        ),
        Panel(
            "stat",
            "Page alerts firing",
            "Burn-rate alerts of severity page firing now.",
            [(_alerts("page"), "page")],
            "short",
            width=3,
            height=5,
            thresholds=alert_thresholds,
        ),
        Panel(
            "stat",
            "Ticket alerts firing",
            "Burn-rate alerts of severity ticket firing now.",
            [(_alerts("ticket"), "ticket")],
            "short",
            width=3,
            height=5,
            thresholds=alert_thresholds,
        ),
        Panel(
            "stat",
            "SLOs not measured",
            "Metric-absent alerts firing: the SLO's request metric has no series (not "
            "scraped, or no matching route label), so its figures and alerts see nothing.",
            [(_absent(), "absent")],
            "short",
            width=24,
            height=3,
            thresholds=alert_thresholds,
        ),
    ]
    windows = [
        Panel(
            "timeseries",
            "Burn rate per window",
            "Error ratio over each window divided by the error budget. Pages need 14.4x over "
            "1h and 5m or 6x over 6h and 30m; tickets 3x over 1d and 2h or 1x over 3d and 6h.",
            [(_burn_rate(w), f"{_LEGEND} {w}") for w in SLI_WINDOWS],
            "x",
            thresholds=_BURN_THRESHOLDS,
            links=[_TO_SERVICE],
        ),
        Panel(
            "timeseries",
            "Events in the alert windows",
            "Requests and bad requests counted in each alert's long window. An alert needs "
            "enough bad events in it (min_errors) as well as a high ratio: with few "
            "requests a silent alert is not health. (Rules from Sloth record no counts.)",
            [
                (_events(record, w), f"{_LEGEND} {label} {w}")
                for w in ("1h", "6h", "1d", "3d")
                for record, label in (
                    (n.SLO_SLI_TOTAL_EVENTS, "requests"),
                    (n.SLO_SLI_ERROR_EVENTS, "bad"),
                )
            ],
            "short",
        ),
        Panel(
            "timeseries",
            "SLI error ratio per window",
            "Share of bad requests over each window.",
            [
                (_per_slo_expr(f"{n.SLO_SLI_ERROR_RATIO}{w}{_SLO}"), f"{_LEGEND} {w}")
                for w in SLI_WINDOWS
            ],
            "percentunit",
        ),
        Panel(
            "timeseries",
            "Error budget burn-down",
            "Share of the period's error budget left over the last 30 days: traffic-weighted, "
            "flat while the service is idle, below 0 once the SLO is missed.",
            [(_per_slo(n.SLO_PERIOD_BUDGET_REMAINING), _LEGEND)],
            "percentunit",
            thresholds=_BUDGET_THRESHOLDS,
            minimum=None,
            time_from="30d",
        ),
        Panel(
            "timeseries",
            "Burn-rate alerts",
            "Burn-rate alerts firing, by severity.",
            [(_alerts("page"), "page"), (_alerts("ticket"), "ticket")],
            "short",
            thresholds=alert_thresholds,
            stepped=True,
        ),
    ]
    return dashboard(
        uid=UID,
        title="buttress / SLOs",
        description=(
            "Service level objectives from 'buttress rules' (Sloth's recording rule names): "
            "SLI, error budget, burn rate per window and burn-rate alerts."
        ),
        variables=[
            datasource_variable(),
            query_variable("service", n.LABEL_SLO_SERVICE, n.SLO_OBJECTIVE, title="Service"),
            query_variable(
                "slo",
                n.LABEL_SLO_NAME,
                n.SLO_OBJECTIVE + selector(var(n.LABEL_SLO_SERVICE, "service")),
                title="SLO",
            ),
        ],
        rows=[
            ("All SLOs", [_overview()]),
            ("Summary", summary),
            ("Burn rate and budget", windows),
        ],
        annotations=[
            alert_annotation(var(n.LABEL_SLO_SERVICE, "service"), var(n.LABEL_SLO_NAME, "slo"))
        ],
    )
