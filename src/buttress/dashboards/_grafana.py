"""Building blocks of classic Grafana dashboard JSON (schemaVersion 39).

The datasource is a template variable, not an import input: file provisioning does not
resolve ``__inputs``, and a variable lets one dashboard serve several Prometheus servers.
Every panel and target points at ``${datasource}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ..telemetry._rules import label_matchers

__all__ = [
    "Panel",
    "dashboard",
    "datasource_variable",
    "query_variable",
    "selector",
    "target",
]

SCHEMA_VERSION: Final = 39
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
RATE: Final = "$__rate_interval"
_GRID_WIDTH: Final = 24

Thresholds = list[tuple[str, float | None]]
GREEN_ONLY: Final[Thresholds] = [("green", None)]


def selector(*matchers: tuple[str, str, str]) -> str:
    """A label selector; ``$var`` values are Grafana variables, so regex-match them."""
    return label_matchers(matchers)


def variable_matcher(label: str, variable: str) -> tuple[str, str, str]:
    # Multi-value variables expand to a regex alternation, hence =~.
    return (label, "=~", f"${variable}")


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": True,
        "refId": ref,
    }


@dataclass(slots=True)
class Panel:
    """One panel: ``kind`` is a Grafana panel type (timeseries, stat, gauge)."""

    kind: str
    title: str
    description: str
    exprs: list[tuple[str, str]]  # (expression, legend)
    unit: str
    width: int = 12
    height: int = 8
    thresholds: Thresholds = field(default_factory=lambda: list(GREEN_ONLY))
    minimum: float | None = 0
    maximum: float | None = None
    stack: bool = False
    stepped: bool = False

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        targets = [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(self.exprs)]
        defaults: dict[str, Any] = {
            "color": {"mode": "thresholds" if self.kind != "timeseries" else "palette-classic"},
            "mappings": [],
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": c, "value": v} for c, v in self.thresholds],
            },
            "unit": self.unit,
        }
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineInterpolation": "stepAfter" if self.stepped else "linear",
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"group": "A", "mode": "normal" if self.stack else "none"},
                "thresholdsStyle": {"mode": "off" if len(self.thresholds) == 1 else "line"},
            }
        return {
            "datasource": DATASOURCE,
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": self._options(),
            "targets": targets,
            "title": self.title,
            "type": self.kind,
        }

    def _options(self) -> dict[str, Any]:
        reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
        if self.kind == "timeseries":
            return {
                "legend": {
                    "calcs": ["mean", "max", "lastNotNull"],
                    "displayMode": "table",
                    "placement": "bottom",
                    "showLegend": True,
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        if self.kind == "gauge":
            return {
                "orientation": "auto",
                "reduceOptions": reduce,
                "showThresholdLabels": False,
                "showThresholdMarkers": True,
            }
        return {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce,
            "textMode": "auto",
        }


def datasource_variable() -> dict[str, Any]:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, series: str, *, title: str) -> dict[str, Any]:
    """A multi-value variable listing ``label``'s values on the series ``series``."""
    query = f"label_values({series}, {label})"
    return {
        "allValue": ".*",
        "current": {},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": title,
        "multi": True,
        "name": name,
        "options": [],
        # The classic string form: every Grafana version reads it and migrates it.
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def _row(title: str, panel_id: int, y: int) -> dict[str, Any]:
    return {
        "collapsed": False,
        "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
        "id": panel_id,
        "panels": [],
        "title": title,
        "type": "row",
    }


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    rows: list[tuple[str, list[Panel]]],
) -> dict[str, Any]:
    """A dashboard laid out row by row: panels fill each row left to right, then wrap."""
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    for row_title, row_panels in rows:
        panels.append(_row(row_title, panel_id, y))
        panel_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row_panels:
            if x + panel.width > _GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(panel.to_json(panel_id, x, y))
            panel_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": ["buttress"],
                "targetBlank": False,
                "title": "buttress dashboards",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["buttress"],
        "templating": {"list": variables},
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }
