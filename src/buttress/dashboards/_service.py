"""The service overview: RED by route, requests in flight, status classes, outbound calls."""

from __future__ import annotations

from typing import Any, Final

from ..telemetry import _names as n
from ._grafana import (
    RATE,
    Panel,
    alert_annotation,
    dashboard,
    dashboard_link,
    datasource_variable,
    query_variable,
    selector,
    traces_variable,
)
from ._grafana import variable_matcher as var

UID: Final = "buttress-service"

COUNT: Final = n.HTTP_SERVER_DURATION + "_count"
BUCKET: Final = n.HTTP_SERVER_DURATION + "_bucket"
SERVER_ERRORS: Final = (n.LABEL_STATUS, "=~", "5..")
CLIENT_REJECTS: Final = (n.LABEL_STATUS, "=~", "4..")
# Drill-downs keep the job, instance and route of the row clicked, and the time range.
# The job variable as it is (all its values), the instance of the series clicked.
_TO_RESILIENCE: Final = dashboard_link(
    "buttress-resilience",
    "Resilience of this instance",
    raw="${job:queryparam}",
    instance="${__field.labels.instance}",
)
CLIENT_COUNT: Final = n.HTTP_CLIENT_DURATION + "_count"
CLIENT_BUCKET: Final = n.HTTP_CLIENT_DURATION + "_bucket"
# An outbound request fails when it gets a 5xx or no answer at all (connection refused,
# timed out): the transport records those with an empty status, which Prometheus stores
# as no label, and an anchored regex that matches "" also matches a missing label.
CLIENT_ERRORS: Final = (n.LABEL_STATUS, "=~", "5..|")


def _requests(*extra: tuple[str, str, str]) -> str:
    return COUNT + selector(
        var(n.LABEL_JOB, "job"),
        var(n.LABEL_INSTANCE, "instance"),
        var(n.LABEL_ROUTE, "route"),
        *extra,
    )


def _rate(series: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series}[{RATE}]))"


def _ratio(bad: tuple[str, str, str], by: str) -> str:
    # "or 0 * requests": a route that never failed shows 0, not a gap.
    requests = _rate(_requests(), by)
    return f"({_rate(_requests(bad), by)}\nor\n0 * {requests})\n/\n{requests}"


def _quantile(q: float, by: str) -> str:
    series = BUCKET + selector(
        var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance"), var(n.LABEL_ROUTE, "route")
    )
    return f"histogram_quantile({q}, sum by ({by}) (rate({series}[{RATE}])))"


def _bucket() -> str:
    return BUCKET + selector(
        var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance"), var(n.LABEL_ROUTE, "route")
    )


def _outbound(metric: str, *extra: tuple[str, str, str]) -> str:
    # Outbound requests carry no route: only the job and instance variables apply.
    return metric + selector(var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance"), *extra)


def _outbound_panels(latency_thresholds: list[tuple[str, float | None]]) -> list[Panel]:
    server = n.LABEL_SERVER_ADDRESS
    requests = _rate(_outbound(CLIENT_COUNT), server)
    errors = _rate(_outbound(CLIENT_COUNT, CLIENT_ERRORS), server)
    # "or 0 * requests": a server that never failed shows 0, not a gap.
    error_ratio = f"({errors}\nor\n0 * {requests})\n/\n{requests}"
    latency = (
        f"histogram_quantile(0.95, sum by ({n.LABEL_LE}, {server}) "
        f"(rate({_outbound(CLIENT_BUCKET)}[{RATE}])))"
    )
    legend = f"{{{{{server}}}}}"
    return [
        Panel(
            "timeseries",
            "Outbound request rate by server",
            "Requests this service sent per second, by destination host (each retry counts).",
            [(requests, legend)],
            "reqps",
            width=6,
        ),
        Panel(
            "timeseries",
            "Outbound error ratio by server",
            "Share of outbound requests answered with a 5xx or not answered at all "
            "(connection error, timeout), by destination host.",
            [(error_ratio, legend)],
            "percentunit",
            width=6,
            thresholds=[("green", None), ("orange", 0.01), ("red", 0.05)],
        ),
        Panel(
            "timeseries",
            "Outbound latency p95 by server",
            "95th percentile of outbound request duration (until the response headers "
            "arrived), by destination host.",
            [(latency, legend)],
            "s",
            width=6,
            thresholds=latency_thresholds,
        ),
        Panel(
            "timeseries",
            "Outbound in flight by server",
            "Outbound requests waiting for an answer now, by destination host.",
            [(f"sum by ({server}) ({_outbound(n.HTTP_CLIENT_ACTIVE)})", legend)],
            "short",
            width=6,
        ),
    ]


def build() -> dict[str, Any]:
    route, le = n.LABEL_ROUTE, n.LABEL_LE
    active = n.HTTP_SERVER_ACTIVE + selector(
        var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance")
    )
    error_ratio = f"({_rate(_requests(SERVER_ERRORS))} or vector(0))\n/\n{_rate(_requests())}"
    latency_thresholds = [("green", None), ("orange", 0.5), ("red", 1.0)]
    error_thresholds = [("green", None), ("orange", 0.001), ("red", 0.01)]
    overview = [
        Panel(
            "stat",
            "Requests",
            "Requests per second, all selected routes.",
            [(_rate(_requests()), "requests")],
            "reqps",
            width=6,
            height=5,
        ),
        Panel(
            "stat",
            "Server errors",
            "Share of responses with a 5xx status.",
            [(error_ratio, "5xx")],
            "percentunit",
            width=6,
            height=5,
            thresholds=error_thresholds,
        ),
        Panel(
            "stat",
            "p95 latency",
            "95th percentile of request duration.",
            [(_quantile(0.95, le), "p95")],
            "s",
            width=6,
            height=5,
            thresholds=latency_thresholds,
        ),
        Panel(
            "stat",
            "In flight",
            "Requests being served now.",
            [(f"sum ({active})", "in flight")],
            "short",
            width=6,
            height=5,
        ),
    ]
    red = [
        Panel(
            "timeseries",
            "Request rate by route",
            "Requests per second by route template.",
            [(_rate(_requests(), route), f"{{{{{route}}}}}")],
            "reqps",
        ),
        Panel(
            "timeseries",
            "Server error ratio by route",
            "Share of responses with a 5xx status, by route template.",
            [(_ratio(SERVER_ERRORS, route), f"{{{{{route}}}}}")],
            "percentunit",
            thresholds=error_thresholds,
        ),
        Panel(
            "timeseries",
            "Client error ratio by route",
            "Share of responses with a 4xx status, by route template: a rise often means a "
            "broken client or a changed contract, not a failing service.",
            [(_ratio(CLIENT_REJECTS, route), f"{{{{{route}}}}}")],
            "percentunit",
            thresholds=[("green", None), ("orange", 0.05), ("red", 0.2)],
        ),
        Panel(
            "timeseries",
            "Latency p50 / p95 / p99",
            "Request duration quantiles, all routes.",
            [(_quantile(q, le), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
            "s",
            thresholds=latency_thresholds,
            # Exemplars carry trace ids: a dot on the chart opens the slow request's trace.
            exemplars=True,
        ),
        Panel(
            "timeseries",
            "Latency p95 by route",
            "95th percentile duration by route.",
            [(_quantile(0.95, f"{le}, {route}"), f"{{{{{route}}}}}")],
            "s",
            thresholds=latency_thresholds,
            exemplars=True,
        ),
        Panel(
            "heatmap",
            "Latency distribution",
            "Requests per duration bucket over time, all selected routes; exemplars mark "
            "single requests and link to their traces.",
            [(f"sum by ({le}) (increase({_bucket()}[{RATE}]))", f"{{{{{le}}}}}")],
            "s",
            width=24,
            exemplars=True,
        ),
    ]
    status_class = (
        f'sum by (status_class) (label_replace(rate({_requests()}[{RATE}]), "status_class", '
        f'"${{1}}xx", "{n.LABEL_STATUS}", "([0-9])..")) '
    ).rstrip()
    traffic = [
        Panel(
            "timeseries",
            "Responses by status class",
            "Responses per second: 2xx, 3xx, 4xx, 5xx.",
            [(status_class, "{{status_class}}")],
            "reqps",
            stack=True,
        ),
        Panel(
            "timeseries",
            "In flight by instance",
            "Requests being served, by instance.",
            [(f"sum by ({n.LABEL_INSTANCE}) ({active})", f"{{{{{n.LABEL_INSTANCE}}}}}")],
            "short",
        ),
        Panel(
            "timeseries",
            "Requests by method",
            "Requests per second by HTTP method.",
            [(_rate(_requests(), n.LABEL_METHOD), f"{{{{{n.LABEL_METHOD}}}}}")],
            "reqps",
            stack=True,
        ),
    ]
    instance = n.LABEL_INSTANCE
    instance_legend = f"{{{{{instance}}}}}"
    requests_by_route = _rate(_requests(), route)
    top = [
        Panel(
            "table",
            "Top routes",
            "The ten busiest routes now, with their 5xx ratio and p95 latency.",
            [
                (f"topk(10, {requests_by_route})", "requests/s"),
                (
                    f"{_ratio(SERVER_ERRORS, route)}\nand on ({route})\n"
                    f"topk(10, {requests_by_route})",
                    "5xx ratio",
                ),
                (
                    f"{_quantile(0.95, f'{le}, {route}')}\nand on ({route})\n"
                    f"topk(10, {requests_by_route})",
                    "p95",
                ),
            ],
            "short",
            width=12,
            instant=True,
        ),
        Panel(
            "stat",
            "Series without a route label",
            "Request series of the selected jobs that carry no http_route label (a service "
            "instrumented only by OpenTelemetry's ASGI instrumentation has none): route "
            "panels and route-scoped SLOs cannot see their requests. 0 is what you want.",
            [
                (
                    f"count ({COUNT}{selector(var(n.LABEL_JOB, 'job'), (route, '=', ''))})"
                    " or vector(0)",
                    "unrouted series",
                )
            ],
            "short",
            width=12,
            height=8,
            thresholds=[("green", None), ("orange", 1)],
        ),
    ]
    per_instance = [
        Panel(
            "timeseries",
            "Request rate by instance",
            "Requests per second by scraped instance: one pod taking no traffic stands out.",
            [(_rate(_requests(), instance), instance_legend)],
            "reqps",
            width=8,
            links=[_TO_RESILIENCE],
        ),
        Panel(
            "timeseries",
            "Server error ratio by instance",
            "Share of 5xx responses by instance: one bad pod among healthy ones.",
            [(_ratio(SERVER_ERRORS, instance), instance_legend)],
            "percentunit",
            width=8,
            thresholds=error_thresholds,
        ),
        Panel(
            "timeseries",
            "Latency p95 by instance",
            "95th percentile duration by instance.",
            [(_quantile(0.95, f"{le}, {instance}"), instance_legend)],
            "s",
            width=8,
            thresholds=latency_thresholds,
            exemplars=True,
        ),
    ]
    job_series = COUNT
    instance_series = COUNT + selector(var(n.LABEL_JOB, "job"))
    route_series = COUNT + selector(var(n.LABEL_JOB, "job"), var(n.LABEL_INSTANCE, "instance"))
    return dashboard(
        uid=UID,
        title="buttress / Service",
        description="RED metrics of an HTTP service behind the buttress middleware, by route, "
        "and of the outbound requests it makes through the buttress httpx transports.",
        variables=[
            datasource_variable(),
            query_variable("job", n.LABEL_JOB, job_series, title="Job"),
            query_variable("instance", n.LABEL_INSTANCE, instance_series, title="Instance"),
            query_variable("route", n.LABEL_ROUTE, route_series, title="Route"),
            traces_variable(),
        ],
        rows=[
            ("Overview", overview),
            ("Requests, errors, duration", red),
            ("Traffic", traffic),
            ("Routes", top),
            ("Instances", per_instance),
            ("Outbound calls", _outbound_panels(latency_thresholds)),
        ],
        annotations=[alert_annotation(var(n.LABEL_SLO_SERVICE, "job"))],
    )
