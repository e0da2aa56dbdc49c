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
    "alert_annotation",
    "dashboard_link",
    "trace_link",
    "traces_variable",
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


TRACES_VARIABLE: Final = "traces"


def target(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, exemplar: bool = False
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }
    if instant:
        result |= {"instant": True, "format": "table"}
    if exemplar:
        # The middleware attaches the trace id to histogram samples as an exemplar.
        result["exemplar"] = True
    return result


def trace_link() -> dict[str, Any]:
    """A data link from an exemplar's trace id to the trace, in the ``$traces`` datasource."""
    from ..telemetry._names import LOG_KEY_TRACE_ID

    # An exemplar's labels are fields of its row: the middleware names the trace id so.
    trace_id = "${__data.fields." + LOG_KEY_TRACE_ID + "}"
    left = (
        '{"datasource":"${' + TRACES_VARIABLE + '}","queries":[{"refId":"A",'
        '"queryType":"traceql","query":"' + trace_id + '"}]}'
    )
    return {"title": "Open trace", "url": f"/explore?left={left}", "targetBlank": True}


def dashboard_link(uid: str, title: str, *, raw: str = "", **variables: str) -> dict[str, Any]:
    """A data link to another dashboard, keeping the time range and the named variables.

    ``raw`` is added to the query as it is (``${job:queryparam}`` carries every value).
    """
    parts = [f"var-{name}={value}" for name, value in variables.items()]
    query = "&".join([raw, *parts] if raw else parts)
    return {
        "title": title,
        "url": f"/d/{uid}?${{__url_time_range}}" + (f"&{query}" if query else ""),
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
    instant: bool = False  # table panels read the value now, not a range
    exemplars: bool = False
    links: list[dict[str, Any]] = field(default_factory=list)
    time_from: str | None = None  # a panel-wide relative time, as "30d"

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        targets = [
            target(e, legend, chr(ord("A") + i), instant=self.instant, exemplar=self.exemplars)
            for i, (e, legend) in enumerate(self.exprs)
        ]
        defaults: dict[str, Any] = {
            "color": {"mode": "thresholds" if self.kind != "timeseries" else "palette-classic"},
            "mappings": [],
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": c, "value": v} for c, v in self.thresholds],
            },
            "unit": self.unit,
        }
        links = list(self.links) + ([trace_link()] if self.exemplars else [])
        if links:
            defaults["links"] = links
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
        if self.kind == "heatmap":
            defaults["custom"] = {"scaleDistribution": {"type": "linear"}}
            for item in targets:
                # Bucket series as Grafana's heatmap reads them: one row per le, sorted.
                item["format"] = "heatmap"
        panel: dict[str, Any] = {
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
        if self.kind == "table":
            # One row per series, one column per query, named by the query's legend.
            names = (
                {
                    f"Value #{t['refId']}": legend
                    for t, (_, legend) in zip(targets, self.exprs, strict=True)
                }
                if len(targets) > 1
                else {"Value": self.exprs[0][1]}
            )
            organize = {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": names},
            }
            merge = [{"id": "merge", "options": {}}] if len(targets) > 1 else []
            panel["transformations"] = [*merge, organize]
        if self.time_from is not None:
            panel["timeFrom"] = self.time_from
        return panel

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
        if self.kind == "table":
            return {"cellHeight": "sm", "showHeader": True, "footer": {"show": False}}
        if self.kind == "heatmap":
            return {
                "calculate": False,
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "exemplars": {"color": "rgba(255,0,255,0.7)"},
                "legend": {"show": True},
                "tooltip": {"mode": "single", "yHistogram": False},
                "yAxis": {"axisPlacement": "left", "unit": "s"},
                "rowsFrame": {"layout": "auto"},
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


def traces_variable() -> dict[str, Any]:
    """The datasource exemplar links open traces in (Tempo unless chosen otherwise)."""
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Traces",
        "multi": False,
        "name": TRACES_VARIABLE,
        "options": [],
        "query": "tempo",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def alert_annotation(*matchers: tuple[str, str, str]) -> dict[str, Any]:
    """Firing SLO alerts (buttress's or Sloth's: any with ``sloth_severity``) as annotations."""
    from ..telemetry import _names as n

    expr = n.PROMETHEUS_ALERTS + selector(
        (n.LABEL_ALERT_STATE, "=", "firing"), (n.LABEL_SLO_SEVERITY, "!=", ""), *matchers
    )
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": expr,
        "iconColor": "red",
        "name": "SLO alerts",
        "step": "60s",
        "tagKeys": f"{n.LABEL_SLO_SERVICE},{n.LABEL_SLO_NAME},{n.LABEL_SLO_SEVERITY}",
        "textFormat": "{{" + n.LABEL_SLO_SERVICE + "}} / {{" + n.LABEL_SLO_NAME + "}}",
        "titleFormat": "{{" + n.LABEL_ALERT_NAME + "}}",
        "useValueForTime": False,
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
    annotations: list[dict[str, Any]] | None = None,
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
                },
                *(annotations or []),
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
                # The three dashboards share the job/instance/route variables and the time.
                "includeVars": True,
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
