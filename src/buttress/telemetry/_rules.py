"""Prometheus rules for SLOs: SLI recording rules and multi-window multi-burn-rate alerts.

Recording rules carry Sloth's names and labels (``slo:sli_error:ratio_rate5m`` with
``sloth_id``, ``sloth_service``, ``sloth_slo``, ``sloth_window``), so dashboards built for
Sloth keep working. Every window's ratio is bad events over all events, both read as
counter increases (``slo:sli_error:increase1h``, ``slo:sli_total:increase1h``), the
period's included: traffic-weighted, untouched by counter resets, and 0 rather than NaN
when a window saw no traffic. Alerts follow the Google SRE workbook (page: 2% of the
budget in 1h or 5% in 6h; ticket: 10% in 1d or in 3d, the factors scaled to the period),
and each also needs ``min_errors`` bad events in its long window, so a quiet service does
not page on one stray error and still pages on a total outage. A metric-absent alert per
SLO says when the SLI cannot be read at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._errors import ConfigurationError
from .._version import __version__
from . import _names as names
from ._names import DURATION_BUCKETS
from ._windows import SLI_WINDOWS, burn_windows

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

ALERT_NAME: Final = names.ALERT_SLO_BURN
ABSENT_ALERT_NAME: Final = names.ALERT_SLO_METRIC_ABSENT
SLO_DASHBOARD_PATH: Final = "/d/buttress-slo/buttress-slos"
SLOTH_SPEC: Final = "prometheus/v1"
# How long the request metric must be missing before the absent alert fires: longer than
# a restart or a few failed scrapes.
ABSENT_FOR: Final = "10m"

SLI_ERROR: Final = names.SLO_SLI_ERROR_RATIO
ERROR_EVENTS: Final = names.SLO_SLI_ERROR_EVENTS
TOTAL_EVENTS: Final = names.SLO_SLI_TOTAL_EVENTS
OBJECTIVE: Final = names.SLO_OBJECTIVE
ERROR_BUDGET: Final = names.SLO_ERROR_BUDGET
TIME_PERIOD: Final = names.SLO_TIME_PERIOD_DAYS
CURRENT_BURN_RATE: Final = names.SLO_CURRENT_BURN_RATE
PERIOD_BURN_RATE: Final = names.SLO_PERIOD_BURN_RATE
BUDGET_REMAINING: Final = names.SLO_PERIOD_BUDGET_REMAINING
INFO: Final = names.SLO_INFO

_WINDOW: Final = names.LABEL_SLO_WINDOW
_SLO_KEYS: Final = f"{names.LABEL_SLO_ID}, {names.LABEL_SLO_NAME}, {names.LABEL_SLO_SERVICE}"
_REGEX_SPECIAL: Final = frozenset("\\.+*?()|[]{}^$")
# A request that failed after its response started keeps its status (200) and says so in
# error_type; a client that went away is not the service's failure.
_FAILED_AFTER_START: Final = (names.LABEL_ERROR_TYPE, "!~", "|" + names.ERROR_CLIENT_DISCONNECT)
_NOT_FAILED: Final = (names.LABEL_ERROR_TYPE, "=~", "|" + names.ERROR_CLIENT_DISCONNECT)
_SERVER_ERROR: Final = (names.LABEL_STATUS, "=~", "5..")
_NOT_SERVER_ERROR: Final = (names.LABEL_STATUS, "!~", "5..")


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
    selected = [(k, "=", v) for k, v in slo.selector.items()]
    if slo.signal == "jobs":
        return selected + _destination_matcher(slo.destinations)
    return selected + _route_matcher(slo.routes)


# Jobs: the outcomes that end a message; "retry" deliveries come back, "duplicate" ones
# did nothing. Latency SLIs count every delivery that did some work.
_JOB_ENDED: Final = (
    names.LABEL_OUTCOME,
    "=~",
    f"{names.JOB_SUCCESS}|{names.JOB_DEAD_LETTER}|{names.JOB_EXPIRED}",
)
_JOB_FAILED: Final = (names.LABEL_OUTCOME, "=~", f"{names.JOB_DEAD_LETTER}|{names.JOB_EXPIRED}")
_JOB_WORKED: Final = (names.LABEL_OUTCOME, "!=", names.JOB_DUPLICATE)
_JOB_SUCCEEDED: Final = (names.LABEL_OUTCOME, "=", names.JOB_SUCCESS)


def _destination_matcher(destinations: Sequence[str] | None) -> list[tuple[str, str, str]]:
    if destinations is None:
        return []
    label = names.LABEL_MESSAGING_DESTINATION
    if len(destinations) == 1:
        return [(label, "=", destinations[0])]
    return [(label, "=~", "|".join(escape_regex(d) for d in destinations))]


def _histogram(slo: SLO) -> str:
    if slo.signal == "jobs":
        return names.MESSAGING_PROCESS_DURATION
    return names.HTTP_SERVER_DURATION


def _increase(series: str, window: str) -> str:
    # "or vector(0)": no series (no 5xx yet, or nothing scraped) counts as no events.
    return f"(sum(increase({series}[{window}])) or vector(0))"


def total_events_expr(slo: SLO, window: str) -> str:
    """The number of requests (or messages) the SLO covers in ``window``."""
    count = _histogram(slo) + "_count"
    base = _base_matchers(slo)
    if slo.signal == "jobs":
        base.append(_JOB_ENDED if slo.threshold is None else _JOB_WORKED)
    return _increase(count + label_matchers(base), window)


def _job_error_events_expr(slo: SLO, window: str) -> str:
    base = _base_matchers(slo)
    count = names.MESSAGING_PROCESS_DURATION + "_count"
    if slo.threshold is None:
        return _increase(count + label_matchers([*base, _JOB_FAILED]), window)
    good = [*base, (names.LABEL_LE, "=~", _le_pattern(slo.threshold))]
    good.append(_JOB_SUCCEEDED if slo.successful_only else _JOB_WORKED)
    bucket = names.MESSAGING_PROCESS_DURATION + "_bucket"
    fast = _increase(bucket + label_matchers(good), window)
    return f"{total_events_expr(slo, window)}\n-\n{fast}"


def error_events_expr(slo: SLO, window: str) -> str:
    """The number of bad requests (or messages) in ``window``."""
    if slo.signal == "jobs":
        return _job_error_events_expr(slo, window)
    base = _base_matchers(slo)
    count = names.HTTP_SERVER_DURATION + "_count"
    if slo.threshold is None:
        server_errors = _increase(count + label_matchers([*base, _SERVER_ERROR]), window)
        failed = _increase(
            count + label_matchers([*base, _NOT_SERVER_ERROR, _FAILED_AFTER_START]), window
        )
        return f"{server_errors}\n+\n{failed}"
    good = [*base, (names.LABEL_LE, "=~", _le_pattern(slo.threshold))]
    if slo.successful_only:
        # A fast failure is not a good request: only fast, non-5xx, unbroken ones are.
        good += [_NOT_SERVER_ERROR, _NOT_FAILED]
    bucket = names.HTTP_SERVER_DURATION + "_bucket"
    fast = _increase(bucket + label_matchers(good), window)
    return f"{total_events_expr(slo, window)}\n-\n{fast}"


def _labels(slo: SLO, **extra: str) -> dict[str, str]:
    return {
        **slo.labels,
        names.LABEL_SLO_ID: slo.id,
        names.LABEL_SLO_SERVICE: slo.service,
        names.LABEL_SLO_NAME: slo.name,
        **extra,
    }


def _slo_matchers(slo: SLO) -> list[tuple[str, str, str]]:
    return [
        (names.LABEL_SLO_ID, "=", slo.id),
        (names.LABEL_SLO_SERVICE, "=", slo.service),
        (names.LABEL_SLO_NAME, "=", slo.name),
    ]


def _slo_selector(slo: SLO) -> str:
    return label_matchers(_slo_matchers(slo))


def _check_buckets(slos: Iterable[SLO], buckets: Iterable[float]) -> None:
    bounds = {float(b) for b in buckets}
    for slo in slos:
        # A jobs SLO's threshold was checked against the jobs histogram when it was made.
        if slo.signal == "http" and slo.threshold is not None and slo.threshold not in bounds:
            raise ConfigurationError(
                f"SLO {slo.name!r}, field 'threshold': {slo.threshold!r} s is not a histogram "
                f"bucket boundary ({', '.join(f'{b:g}' for b in sorted(bounds))}), so the SLI "
                "could not be read exactly; give the middleware buckets_with_thresholds(slos) "
                "and pass the same buckets here"
            )


def _window_labels(slo: SLO, window: str) -> dict[str, str]:
    return _labels(slo, **{names.LABEL_SLO_WINDOW: window})


def _window_selector(slo: SLO, window: str) -> str:
    return label_matchers([*_slo_matchers(slo), (names.LABEL_SLO_WINDOW, "=", window)])


def _recordings(slo: SLO) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    # A 3-day period is also the ticket's long window: recorded once.
    for window in dict.fromkeys((*SLI_WINDOWS, slo.period)):
        selector = _window_selector(slo, window)
        errors = f"{ERROR_EVENTS}{window}{selector}"
        total = f"{TOTAL_EVENTS}{window}{selector}"
        rules += [
            {
                "record": TOTAL_EVENTS + window,
                "expr": total_events_expr(slo, window) + "\n",
                "labels": _window_labels(slo, window),
            },
            {
                "record": ERROR_EVENTS + window,
                "expr": error_events_expr(slo, window) + "\n",
                "labels": _window_labels(slo, window),
            },
            {
                # Rules of a group run in order at one timestamp: the two counts above are
                # this evaluation's. A window without traffic has ratio 0, not NaN.
                "record": SLI_ERROR + window,
                "expr": f"{errors}\n/\n({total} > 0)\nor\n0 * {total}\n",
                "labels": _window_labels(slo, window),
            },
        ]
    return {"name": f"sloth-slo-sli-recordings-{slo.id}", "rules": rules}


def _objective_percent(slo: SLO) -> str:
    return f"{slo.objective * 100:.10g}"


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
            "expr": f"{drop}({SLI_ERROR}{slo.period}{selector})\n{on}{ERROR_BUDGET}{selector}\n",
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
                    names.LABEL_SLO_OBJECTIVE: _objective_percent(slo),
                    names.LABEL_SLO_SPEC: SLOTH_SPEC,
                    names.LABEL_SLO_VERSION: f"buttress-{__version__}",
                },
            ),
        },
    ]
    return {"name": f"sloth-slo-meta-recordings-{slo.id}", "rules": rules}


def _condition(slo: SLO, factor: float, long: str, short: str) -> str:
    selector = _slo_selector(slo)
    limit = f"({factor:g} * {slo.error_budget!r})"
    return (
        f"(\n  ({SLI_ERROR}{short}{selector} > {limit})\n"
        f"  and ignoring ({_WINDOW})\n"
        f"  ({SLI_ERROR}{long}{selector} > {limit})\n"
        f"  and ignoring ({_WINDOW})\n"
        f"  ({ERROR_EVENTS}{long}{selector} >= {slo.min_errors:g})\n)"
    )


def _what(slo: SLO) -> str:
    percent = f"{slo.objective * 100:.4g}%"
    if slo.signal == "jobs":
        if slo.threshold is None:
            return f"{percent} of messages processed without being dead-lettered"
        ok = " and successfully" if slo.successful_only else ""
        return f"{percent} of messages processed in under {slo.threshold:g}s{ok}"
    if slo.threshold is None:
        return f"{percent} of requests without a 5xx or a failure"
    ok = " and without a 5xx" if slo.successful_only else ""
    return f"{percent} of requests answered in under {slo.threshold:g}s{ok}"


def _annotations(slo: SLO, dashboard: str, summary: str, description: str) -> dict[str, str]:
    annotations = {"summary": summary, "description": description, "dashboard": dashboard}
    if slo.runbook_url:
        annotations[names.ANNOTATION_RUNBOOK_URL] = slo.runbook_url
    if slo.description:
        annotations["slo_description"] = slo.description
    return annotations


def _alerts(slo: SLO, dashboard: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    budget_pct = f"{slo.error_budget * 100:.4g}%"
    windows = burn_windows(slo.window_days)
    for fast, slow in (windows[:2], windows[2:]):
        # The value is the short window's burn rate (error ratio over budget), which the
        # description quotes; sloth_window is dropped so one burn is one alert.
        conditions = [
            _condition(slo, w.factor, w.long, w.short)
            for w in (fast, slow)
            if w.factor * slo.error_budget < 1  # a ratio never exceeds 1
        ]
        if not conditions:
            continue
        either = f"\nor ignoring ({_WINDOW})\n".join(conditions)
        expr = f"max without ({_WINDOW}) (\n{either}\n)\n/ {slo.error_budget!r}\n"
        description = (
            f"SLO {slo.name} of {slo.service} ({slo.kind}: {_what(slo)} over "
            f"{slo.window_days} days; error budget {budget_pct}) burns its budget at "
            f"{{{{ $value | humanize }}}} times the allowed error ratio: over "
            f"{fast.factor:g}x in {fast.long} and {fast.short}, or {slow.factor:g}x in "
            f"{slow.long} and {slow.short}, with at least {slo.min_errors:g} bad "
            f"{'messages' if slo.signal == 'jobs' else 'requests'} in the long window."
        )
        summary = (
            f"SLO {slo.name} of {slo.service} burns its error budget too fast ({fast.severity})"
        )
        rules.append(
            {
                "alert": slo.alert_name,
                "expr": expr,
                # The SLO's labels repeated on the rule keep two SLOs' alerts distinct rules.
                "labels": {
                    **_labels(slo),
                    names.LABEL_SEVERITY: fast.alert_severity,
                    names.LABEL_SLO_SEVERITY: fast.severity,
                    names.LABEL_SLO_CATEGORY: slo.kind,
                },
                "annotations": _annotations(slo, dashboard, summary, description),
            }
        )
    count = _histogram(slo) + "_count" + label_matchers(_base_matchers(slo))
    rules.append(
        {
            "alert": ABSENT_ALERT_NAME,
            "expr": f"absent({count})\n",
            "for": ABSENT_FOR,
            "labels": {
                **_labels(slo),
                names.LABEL_SEVERITY: "critical",
                names.LABEL_SLO_CATEGORY: slo.kind,
            },
            "annotations": _annotations(
                slo,
                dashboard,
                f"SLO {slo.name} of {slo.service} cannot be measured: its request metric is absent",
                f"No series of {count} for {ABSENT_FOR}: the service is not scraped, exports "
                "no such metric, or (for an SLO over routes) exposes no matching http_route "
                "label; its SLO and burn-rate alerts cannot see anything.",
            ),
        }
    )
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
