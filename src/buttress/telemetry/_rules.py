"""Prometheus rules for SLOs: SLI recording rules and multi-window multi-burn-rate alerts.

Recording rules carry Sloth's names and labels (``slo:sli_error:ratio_rate5m`` with
``sloth_id``, ``sloth_service``, ``sloth_slo``, ``sloth_window``), so dashboards built for
Sloth keep working. Alerts follow the Google SRE workbook (page: 14.4x over 1h and 5m or
6x over 6h and 30m; ticket: 3x over 1d and 2h or 1x over 3d and 6h), and each also needs
a minimum request rate over its long window, so a quiet service does not page on one
failed request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .._errors import ConfigurationError
from . import _names as names
from ._names import DURATION_BUCKETS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ._slo import SLO

__all__ = [
    "ALERT_NAME",
    "SLI_WINDOWS",
    "escape_regex",
    "label_matchers",
    "render_rules",
    "slo_rules",
]

SLI_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ALERT_NAME: Final = names.ALERT_SLO_BURN
SLO_DASHBOARD_PATH: Final = "/d/buttress-slo/buttress-slos"

SLI_ERROR: Final = names.SLO_SLI_ERROR_RATIO
OBJECTIVE: Final = names.SLO_OBJECTIVE
ERROR_BUDGET: Final = names.SLO_ERROR_BUDGET
TIME_PERIOD: Final = names.SLO_TIME_PERIOD_DAYS
CURRENT_BURN_RATE: Final = names.SLO_CURRENT_BURN_RATE
PERIOD_BURN_RATE: Final = names.SLO_PERIOD_BURN_RATE
BUDGET_REMAINING: Final = names.SLO_PERIOD_BUDGET_REMAINING
INFO: Final = names.SLO_INFO


@dataclass(frozen=True, slots=True)
class _Burn:
    severity: str  # sloth_severity: "page" or "ticket"
    alert_severity: str  # the conventional Alertmanager "severity" label
    factor: float
    long: str
    short: str


# (factor, long window, short window) pairs of the SRE workbook, for a 30-day period.
_BURNS: Final = (
    (_Burn("page", "critical", 14.4, "1h", "5m"), _Burn("page", "critical", 6, "6h", "30m")),
    (_Burn("ticket", "warning", 3, "1d", "2h"), _Burn("ticket", "warning", 1, "3d", "6h")),
)

_WINDOW: Final = names.LABEL_SLO_WINDOW
_SLO_KEYS: Final = f"{names.LABEL_SLO_ID}, {names.LABEL_SLO_NAME}, {names.LABEL_SLO_SERVICE}"
_REGEX_SPECIAL: Final = frozenset("\\.+*?()|[]{}^$")


def escape_regex(text: str) -> str:
    """``text`` as an RE2 pattern matching exactly itself."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def _quote(value: str) -> str:
    # A PromQL string literal: backslashes and double quotes escaped.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def label_matchers(matchers: Iterable[tuple[str, str, str]]) -> str:
    """``{a="x",b=~"y"}`` from (label, operator, value) triples; ``""`` when empty."""
    parts = [f"{label}{op}{_quote(value)}" for label, op, value in matchers]
    return "{" + ",".join(parts) + "}" if parts else ""


def _route_matcher(routes: Sequence[str] | None) -> list[tuple[str, str, str]]:
    if routes is None:
        return []
    if len(routes) == 1:
        return [(names.LABEL_ROUTE, "=", routes[0])]
    # Prometheus anchors regex matchers; every route is escaped so it matches only itself.
    return [(names.LABEL_ROUTE, "=~", "|".join(escape_regex(r) for r in routes))]


def _le_pattern(threshold: float) -> str:
    # prometheus_client writes 1.0 as "1.0", OpenTelemetry exporters may write "1".
    forms = {repr(threshold), f"{threshold:g}"}
    if threshold == int(threshold):
        forms |= {str(int(threshold)), f"{int(threshold)}.0"}
    return "|".join(escape_regex(f) for f in sorted(forms))


def _base_matchers(slo: SLO) -> list[tuple[str, str, str]]:
    assert slo.selector is not None  # SLO fills in the default
    return [(k, "=", v) for k, v in slo.selector.items()] + _route_matcher(slo.routes)


def request_rate_expr(slo: SLO, window: str) -> str:
    """Requests per second the SLO covers, over ``window``."""
    count = names.HTTP_SERVER_DURATION + "_count"
    return f"sum(rate({count}{label_matchers(_base_matchers(slo))}[{window}]))"


def error_ratio_expr(slo: SLO, window: str) -> str:
    """The SLI error ratio over ``window``: bad requests over all requests."""
    base = _base_matchers(slo)
    total = request_rate_expr(slo, window)
    if slo.threshold is None:
        bad = [*base, (names.LABEL_STATUS, "=~", "5..")]
        # A request that failed after its status line went out (a body cut by an
        # exception) has a 2xx status but an error_type: bad too. A client that went away
        # is not the service failing.
        broken = [*base, (names.LABEL_ERROR_TYPE, "!~", f"|{names.ERROR_CLIENT_DISCONNECT}")]
        count = names.HTTP_SERVER_DURATION + "_count"
        # "or" keeps a series matched by both once; "or vector(0)": with no bad series
        # yet, the ratio is 0 rather than empty.
        errors = (
            f"(sum(rate({count}{label_matchers(bad)}[{window}])"
            f" or rate({count}{label_matchers(broken)}[{window}])) or vector(0))"
        )
        return f"{errors}\n/\n{total}"
    good = [*base, (names.LABEL_LE, "=~", _le_pattern(slo.threshold))]
    bucket = names.HTTP_SERVER_DURATION + "_bucket"
    fast = f"sum(rate({bucket}{label_matchers(good)}[{window}]))"
    return f"1 - (\n  {fast}\n  /\n  {total}\n)"


def _labels(slo: SLO, **extra: str) -> dict[str, str]:
    return {
        **slo.labels,
        names.LABEL_SLO_ID: slo.id,
        names.LABEL_SLO_SERVICE: slo.service,
        names.LABEL_SLO_NAME: slo.name,
        **extra,
    }


def _slo_selector(slo: SLO) -> str:
    return label_matchers(
        [
            (names.LABEL_SLO_ID, "=", slo.id),
            (names.LABEL_SLO_SERVICE, "=", slo.service),
            (names.LABEL_SLO_NAME, "=", slo.name),
        ]
    )


def _check_buckets(slos: Iterable[SLO], buckets: Iterable[float]) -> None:
    bounds = {float(b) for b in buckets}
    for slo in slos:
        if slo.threshold is not None and slo.threshold not in bounds:
            raise ConfigurationError(
                f"SLO {slo.name!r}, field 'threshold': {slo.threshold!r} s is not a histogram "
                f"bucket boundary ({', '.join(f'{b:g}' for b in sorted(bounds))}), so the SLI "
                "could not be read exactly; give the middleware buckets_with_thresholds(slos) "
                "and pass the same buckets here"
            )


def _recordings(slo: SLO) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "record": SLI_ERROR + window,
            "expr": error_ratio_expr(slo, window) + "\n",
            "labels": _labels(slo, **{names.LABEL_SLO_WINDOW: window}),
        }
        for window in SLI_WINDOWS
    ]
    period = f"{slo.window_days}d"
    selector = _slo_selector(slo)
    rules.append(
        {
            "record": SLI_ERROR + period,
            # The period ratio averages the 5m ratio instead of reading a 30-day rate:
            # cheap to evaluate, and the same as Sloth computes it.
            "expr": (
                f"sum_over_time({SLI_ERROR}5m{selector}[{period}])\n"
                f"/ ignoring ({_WINDOW})\n"
                f"count_over_time({SLI_ERROR}5m{selector}[{period}])\n"
            ),
            "labels": _labels(slo, **{names.LABEL_SLO_WINDOW: period}),
        }
    )
    return {"name": f"sloth-slo-sli-recordings-{slo.id}", "rules": rules}


def _meta(slo: SLO) -> dict[str, Any]:
    selector = _slo_selector(slo)
    on = f"/ on ({_SLO_KEYS}) group_left\n"
    # A burn rate belongs to the SLO, not to the window its ratio was read over.
    drop = f"max without ({_WINDOW}) "
    rules: list[dict[str, Any]] = [
        {"record": OBJECTIVE, "expr": f"vector({slo.objective!r})", "labels": _labels(slo)},
        {"record": ERROR_BUDGET, "expr": f"vector({slo.error_budget!r})", "labels": _labels(slo)},
        {"record": TIME_PERIOD, "expr": f"vector({slo.window_days})", "labels": _labels(slo)},
        {
            "record": CURRENT_BURN_RATE,
            "expr": f"{drop}({SLI_ERROR}5m{selector})\n{on}{ERROR_BUDGET}{selector}\n",
            "labels": _labels(slo),
        },
        {
            "record": PERIOD_BURN_RATE,
            "expr": (
                f"{drop}({SLI_ERROR}{slo.window_days}d{selector})\n{on}{ERROR_BUDGET}{selector}\n"
            ),
            "labels": _labels(slo),
        },
        {
            "record": BUDGET_REMAINING,
            "expr": f"1 - {PERIOD_BURN_RATE}{selector}",
            "labels": _labels(slo),
        },
        {
            "record": INFO,
            "expr": "vector(1)",
            "labels": _labels(
                slo,
                **{
                    names.LABEL_SLO_MODE: "buttress",
                    names.LABEL_SLO_OBJECTIVE: repr(slo.objective),
                },
            ),
        },
    ]
    return {"name": f"sloth-slo-meta-recordings-{slo.id}", "rules": rules}


def _condition(slo: SLO, burn: _Burn) -> str:
    selector = _slo_selector(slo)
    limit = f"({burn.factor:g} * {slo.error_budget!r})"
    return (
        f"(\n  ({SLI_ERROR}{burn.short}{selector} > {limit})\n"
        f"  and ignoring ({_WINDOW})\n"
        f"  ({SLI_ERROR}{burn.long}{selector} > {limit})\n"
        f"  and on ()\n"
        f"  ({request_rate_expr(slo, burn.long)} >= {slo.min_rate!r})\n)"
    )


def _alerts(slo: SLO, dashboard: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    budget_pct = f"{slo.error_budget * 100:.4g}%"
    what = (
        f"{slo.objective * 100:.4g}% of requests answered in under {slo.threshold:g}s"
        if slo.threshold is not None
        else f"{slo.objective * 100:.4g}% of requests without a 5xx"
    )
    for fast, slow in _BURNS:
        # The value is the short window's burn rate (error ratio over budget), which the
        # description quotes; sloth_window is dropped so one burn is one alert.
        expr = (
            f"max without ({_WINDOW}) (\n"
            f"{_condition(slo, fast)}\nor ignoring ({_WINDOW})\n{_condition(slo, slow)}\n)\n"
            f"/ {slo.error_budget!r}\n"
        )
        rules.append(
            {
                "alert": ALERT_NAME,
                "expr": expr,
                # The SLO's labels repeated on the rule keep two SLOs' alerts distinct rules.
                "labels": {
                    **_labels(slo),
                    names.LABEL_SEVERITY: fast.alert_severity,
                    names.LABEL_SLO_SEVERITY: fast.severity,
                    names.LABEL_SLO_CATEGORY: slo.kind,
                },
                "annotations": {
                    "summary": (
                        f"SLO {slo.name} of {slo.service} burns its error budget too fast "
                        f"({fast.severity})"
                    ),
                    "description": (
                        f"SLO {slo.name} of {slo.service} ({slo.kind}: {what} over "
                        f"{slo.window_days} days; error budget {budget_pct}) burns its budget "
                        f"at {{{{ $value | humanize }}}} times the allowed error ratio: over "
                        f"{fast.factor:g}x in {fast.long} and {fast.short}, or {slow.factor:g}x "
                        f"in {slow.long} and {slow.short}."
                    ),
                    "dashboard": dashboard,
                },
            }
        )
        if slo.description:
            rules[-1]["annotations"]["slo_description"] = slo.description
    return {"name": f"sloth-slo-alerts-{slo.id}", "rules": rules}


def slo_rules(
    slos: Iterable[SLO],
    *,
    buckets: Iterable[float] = DURATION_BUCKETS,
    grafana_url: str = "",
) -> dict[str, Any]:
    """Prometheus rule groups for ``slos``, as a plain mapping ready to dump as YAML.

    ``buckets`` are the histogram boundaries the service uses: a latency threshold that
    is not one of them is refused, because the SLI would silently read another bucket.
    ``grafana_url`` prefixes the SLO dashboard link in every alert.
    """
    slos = list(slos)
    if not slos:
        raise ConfigurationError("no SLOs: declare at least one")
    ids = [s.id for s in slos]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise ConfigurationError(f"SLO id {duplicate!r} declared twice")
    _check_buckets(slos, buckets)
    groups: list[dict[str, Any]] = []
    for slo in slos:
        dashboard = (
            f"{grafana_url.rstrip('/')}{SLO_DASHBOARD_PATH}"
            f"?var-service={slo.service}&var-slo={slo.name}"
        )
        groups += [_recordings(slo), _meta(slo), _alerts(slo, dashboard)]
    return {"groups": groups}


def render_rules(rules: Mapping[str, Any]) -> str:
    """``rules`` as a YAML document that ``promtool check rules`` accepts."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    header = "# Generated by buttress from SLO definitions: regenerate rather than edit.\n"
    body: str = yaml.dump(dict(rules), Dumper=_Dumper, sort_keys=False, width=100)
    return header + body
