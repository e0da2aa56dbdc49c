"""Every dashboard query and every recording rule returns data from a real Prometheus.

A real app behind the buttress middleware on 127.0.0.1, calling a real upstream through
the httpx transport and running real buttress policies, gets real traffic; a real
Prometheus (the Debian package) scrapes it every second with the generated rules loaded.
A real Redis holds the rate limiter's bucket until the fixture stops it. Bounded: the
traffic stops itself after a capped number of requests, and every poll ends 45 seconds
after the stack is up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import redis

import buttress.dashboards
from buttress import RedisStore
from buttress.slo import SLO, slo_rules
from buttress.telemetry import _names as n
from buttress.telemetry._rules import SLI_WINDOWS, escape_regex
from buttress.telemetry._slo import buckets_with_thresholds

from .._services import RedisServer, require_binary
from ._live import (
    PATHS,
    REFUSED_PATHS,
    Prometheus,
    Traffic,
    checkout_service,
    otel_service,
    refusing_host,
    serve,
    traffic,
    upstream_app,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.redis, pytest.mark.slow]

JOB = "checkout"
RATE_INTERVAL = "15s"  # 15 scrapes at 1s: rate() has enough samples within seconds
# Every test polls until one deadline for the whole module, counted from when the stack
# is up: a failing run still ends within about a minute.
DEADLINE = 45.0

SLOS = [
    SLO("availability", service=JOB, objective=0.999),
    # 300 ms is not a default boundary: the app's buckets must include it.
    SLO("latency", service=JOB, objective=0.99, threshold=0.3),
    # A template with regex metacharacters, matched exactly.
    SLO("items", service=JOB, objective=0.999, routes=["/items/{item_id}", "/"]),
]
BUCKETS = buckets_with_thresholds(SLOS)
# A service instrumented only by OpenTelemetry (no buttress, no http_route label).
OTEL_JOB = "otel-shop"
OTEL_SLOS = [
    SLO("availability", service=OTEL_JOB, objective=0.99),
    SLO("latency", service=OTEL_JOB, objective=0.99, threshold=0.3),
    # Over a route: the OTel service has no http_route label, so this SLO sees nothing.
    SLO("items", service=OTEL_JOB, objective=0.99, routes=["/items/{item_id}"]),
]
# Panels that read what an OpenTelemetry-only ASGI service does not export: its outbound
# calls (no instrumented client) and buttress's resilience metrics.
OTEL_CANNOT: Final = {
    "Outbound request rate by server",
    "Outbound error ratio by server",
    "Outbound latency p95 by server",
    "Outbound in flight by server",
}
SERVER = n.LABEL_SERVER_ADDRESS


@dataclass
class Stack:
    prometheus: Prometheus
    traffic: Traffic
    deadline: float  # time.monotonic() after which polls give up


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    prometheus_binary = require_binary("prometheus")
    redis_binary = require_binary("redis-server")
    rules = slo_rules([*SLOS, *OTEL_SLOS], buckets=BUCKETS)
    with (
        RedisServer(redis_binary) as redis_server,
        serve(upstream_app()) as upstream_port,
        refusing_host() as down,
        otel_service() as otel_port,
    ):
        store = RedisStore(redis_server.url, service=JOB)
        service = checkout_service(
            service=JOB,
            slos=SLOS,
            upstream=f"http://127.0.0.1:{upstream_port}",
            down=down,
            store=store,
        )
        with (
            serve(service.app) as port,
            traffic(port, service) as driven,
            Prometheus(
                prometheus_binary,
                job=JOB,
                target_port=port,
                rules=rules,
                more_targets={OTEL_JOB: (otel_port, "/metrics/")},
            ) as prometheus,
        ):
            driven.wait_for_rounds(1)
            # The rate limiter kept its bucket in Redis; now Redis goes away, and it decides
            # locally from its next call on (the shared-store panels).
            with redis.Redis.from_url(redis_server.url) as client:
                assert client.exists(store.key("ratelimit", "search"))
            redis_server.stop()
            yield Stack(prometheus, driven, time.monotonic() + DEADLINE)


@pytest.fixture
def prometheus(stack: Stack) -> Prometheus:
    return stack.prometheus


@pytest.fixture
def deadline(stack: Stack) -> float:
    return stack.deadline


def _regex_value(values: list[str]) -> str:
    # What Grafana puts in place of a multi-value variable inside a =~ "..." matcher:
    # each value regex-escaped, joined by |, then escaped for the PromQL string.
    return "|".join(escape_regex(v) for v in values).replace("\\", "\\\\")


def _fill(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = re.sub(rf"\${name}\b", value.replace("\\", "\\\\"), expr)
    return expr


def _eventually(check: Any, deadline: float) -> list[str]:
    """Retry ``check`` (returning a list of failures) until it returns none or time is up."""
    while True:
        failures: list[str] = check()
        if not failures or time.monotonic() > deadline:
            return failures
        time.sleep(1)


def _dashboard_failures(
    prometheus: Prometheus, dashboard: dict[str, Any], chosen: dict[str, str]
) -> list[str]:
    """Panels whose queries return nothing, with the variables ``chosen`` (name -> value)
    and every other variable set to all the values it lists.

    A variable that lists nothing is a failure, except where ``chosen`` says ``.*``: that
    is what Grafana puts for "All" (the variables' allValue), which also matches series
    without the label.
    """
    failures: list[str] = []
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = _fill(variable["query"], values)
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", query, re.S)
        assert match, query
        found = prometheus.label_values(*match.groups())
        name = variable["name"]
        if name in chosen:
            if chosen[name] != ".*" and chosen[name] not in found:
                return [f"variable {name}: {query} does not list {chosen[name]!r}"]
            values[name] = chosen[name] if chosen[name] == ".*" else _regex_value([chosen[name]])
            continue
        if not found:
            return [f"variable {name}: {query} lists nothing"]
        values[name] = _regex_value(found)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = _fill(target["expr"], values)
            assert "$" not in expr.replace("${1}", ""), expr
            if not prometheus.query(expr):
                failures.append(f"{dashboard['uid']} / {panel['title']}: {expr}")
    return failures


_BUTTRESS: Final = {
    "buttress-service": {"job": JOB},
    "buttress-slo": {"service": JOB},
    "buttress-resilience": {"job": JOB},
}


@pytest.mark.parametrize("name", ["buttress-service", "buttress-slo", "buttress-resilience"])
def test_every_panel_query_returns_data(prometheus: Prometheus, deadline: float, name: str) -> None:
    """For the buttress service alone: every panel of every dashboard."""
    dashboard = buttress.dashboards.load(name)
    chosen = _BUTTRESS[name]
    failures = _eventually(lambda: _dashboard_failures(prometheus, dashboard, chosen), deadline)
    assert failures == []


@pytest.mark.parametrize(
    ("name", "chosen", "cannot"),
    [
        # No route label: Grafana's "All" (.*) for the route variable.
        ("buttress-service", {"job": OTEL_JOB, "route": ".*"}, OTEL_CANNOT),
        ("buttress-slo", {"service": OTEL_JOB}, set()),
    ],
)
def test_every_panel_that_can_returns_data_for_an_opentelemetry_service(
    prometheus: Prometheus,
    deadline: float,
    name: str,
    chosen: dict[str, str],
    cannot: set[str],
) -> None:
    """A service instrumented by opentelemetry-instrumentation-asgi and its Prometheus
    exporter: every panel returns data but those reading what it does not export."""
    dashboard = buttress.dashboards.load(name)

    def failures() -> list[str]:
        found = _dashboard_failures(prometheus, dashboard, chosen)
        return [f for f in found if f.split(" / ", 1)[1].split(":", 1)[0] not in cannot]

    assert _eventually(failures, deadline) == []
    # The panels it cannot fill really are empty (the exclusion list is not stale).
    missing = {
        f.split(" / ", 1)[1].split(":", 1)[0]
        for f in _dashboard_failures(prometheus, dashboard, chosen)
    }
    assert missing == cannot


def test_the_route_check_sees_the_opentelemetry_service(
    prometheus: Prometheus, deadline: float
) -> None:
    """'Series without a route label' counts the OTel service's series, not buttress's."""
    panel = next(
        p
        for p in buttress.dashboards.load("buttress-service")["panels"]
        if p["title"] == "Series without a route label"
    )

    def count(job: str) -> float:
        result = prometheus.query(_fill(panel["targets"][0]["expr"], {"job": job}))
        return float(result[0]["value"][1])

    assert _eventually(lambda: [] if count(OTEL_JOB) > 0 else ["no series yet"], deadline) == []
    assert count(JOB) == 0


def test_a_route_scoped_slo_over_an_unrouted_service_says_it_sees_nothing(
    prometheus: Prometheus, deadline: float
) -> None:
    """Its metric-absent alert is pending (it fires after 10 minutes); the others are not."""
    query = (
        f'{n.PROMETHEUS_ALERTS}{{{n.LABEL_ALERT_NAME}="{n.ALERT_SLO_METRIC_ABSENT}",'
        f'{n.LABEL_ALERT_STATE}="pending"}}'
    )

    def pending() -> set[str]:
        return {r["metric"][n.LABEL_SLO_ID] for r in prometheus.query(query)}

    # Until both jobs are scraped every SLO's metric is absent: wait for that to settle.
    expected = {f"{OTEL_JOB}-items"}
    assert _eventually(lambda: [] if pending() == expected else [str(pending())], deadline) == []


def test_opentelemetry_slis_read_its_failures(prometheus: Prometheus, deadline: float) -> None:
    """One request in ten of the OTel service answers 500 (error_type="500" as well)."""

    def ratio() -> float:
        result = prometheus.query(
            f'{n.SLO_SLI_ERROR_RATIO}5m{{{n.LABEL_SLO_ID}="{OTEL_JOB}-availability"}}'
        )
        return float(result[0]["value"][1]) if result else 0.0

    assert _eventually(lambda: [] if ratio() > 0 else ["no errors yet"], deadline) == []
    # Counted once, not twice, though both the status and error_type say it.
    assert 0.05 < ratio() < 0.15


def test_recording_rules_return_data(prometheus: Prometheus, deadline: float) -> None:
    records = [
        f"{prefix}{w}"
        for prefix in (n.SLO_SLI_ERROR_RATIO, n.SLO_SLI_ERROR_EVENTS, n.SLO_SLI_TOTAL_EVENTS)
        for w in (*SLI_WINDOWS, "30d")
    ] + [
        n.SLO_OBJECTIVE,
        n.SLO_ERROR_BUDGET,
        n.SLO_TIME_PERIOD_DAYS,
        n.SLO_CURRENT_BURN_RATE,
        n.SLO_PERIOD_BURN_RATE,
        n.SLO_PERIOD_BUDGET_REMAINING,
        n.SLO_INFO,
    ]

    def missing() -> list[str]:
        return [
            f'{record}{{{n.LABEL_SLO_ID}="{slo.id}"}}'
            for slo in [*SLOS, *OTEL_SLOS]
            for record in records
            if not prometheus.query(f'{record}{{{n.LABEL_SLO_ID}="{slo.id}"}}')
        ]

    assert _eventually(missing, deadline) == []


def test_slis_read_the_traffic(prometheus: Prometheus, deadline: float) -> None:
    """One request in six fails and one in six is slow; the selected routes never fail."""

    def ratio(slo: str) -> float:
        result = prometheus.query(f'{n.SLO_SLI_ERROR_RATIO}5m{{{n.LABEL_SLO_ID}="{JOB}-{slo}"}}')
        assert len(result) == 1
        return float(result[0]["value"][1])

    def out_of_range() -> list[str]:
        # The 5m windows fill as the traffic runs: early on, a few unlucky seconds on a
        # loaded machine can put a ratio just outside the band, so it is read until it settles.
        values = {slo: ratio(slo) for slo in ("availability", "latency")}
        return [f"{slo}: {v}" for slo, v in values.items() if not 0.05 < v < 0.35]

    assert _eventually(out_of_range, deadline) == []
    # /fail's errors must not leak into an SLO over /items/{item_id} and /.
    assert ratio("items") == 0.0


def test_every_strategy_reached_the_states_the_panels_show(
    prometheus: Prometheus, deadline: float
) -> None:
    """Panels also return data at zero; these read the values the traffic must produce."""
    p, o, e = n.LABEL_POLICY, n.LABEL_OUTCOME, n.LABEL_ERROR_TYPE
    to, from_ = n.LABEL_TO_STATE, n.LABEL_FROM_STATE
    expected = [
        f'{n.BREAKER_TRANSITIONS}{{{to}="open"}}',
        f'{n.BREAKER_TRANSITIONS}{{{to}="half_open"}}',
        f'{n.BREAKER_TRANSITIONS}{{{from_}="half_open", {to}="closed"}}',
        n.BREAKER_REJECTIONS,
        f'{n.BREAKER_CALLS}{{{o}="failure"}}',
        f'{n.BULKHEAD_REJECTIONS}{{{p}="reports", {n.LABEL_REASON}="full"}}',
        f'{n.RATE_LIMITER_WAITS}{{{p}="search"}}',
        f'{n.RATE_LIMITER_REJECTIONS}{{{p}="search"}}',
        f'{n.TIMEOUTS}{{{p}="recommendations"}}',
        # The transport retried the upstream's 503 answers (a rejected result).
        f'{n.RETRY_ATTEMPTS}{{{p}=~"pricing:.*", {e}="result"}}',
        f'{n.RETRY_ATTEMPTS}{{{p}="inventory", {e}="ConnectionError"}}',
        f'{n.RETRY_CALLS}{{{p}="inventory", {o}="budget"}}',
        f'{n.STORE_ERRORS}{{{p}="search", {n.LABEL_STORE}="redis"}}',
        f'{n.STORE_DEGRADED}{{{p}="search", {n.LABEL_STORE}="redis"}}',
        f'{n.FAULTS_INJECTED}{{{p}="inventory", {n.LABEL_KIND}="exception"}}',
        f'{n.HTTP_CLIENT_DURATION}_count{{{n.LABEL_STATUS}="503"}}',
        f'{n.HTTP_CLIENT_DURATION}_count{{{n.LABEL_STATUS}="500"}}',
        # Requests to the dependency that is down got no answer: no status label.
        f'{n.HTTP_CLIENT_DURATION}_count{{{SERVER}="127.0.0.2", {n.LABEL_STATUS}=""}}',
        f'{n.RETRY_ATTEMPTS}{{{p}=~"promotions:.*", {e}="ConnectError"}}',
        f'{n.RETRY_CALLS}{{{p}=~"promotions:.*", {o}="exhausted"}}',
        f'{n.HEDGES_SENT}{{{p}="catalog"}}',
        f'{n.HEDGES_WON}{{{p}="catalog"}}',
        f'{n.THROTTLE_REJECTIONS}{{{p}="feed"}}',
    ]
    expected += [
        f'{n.FALLBACKS}{{{e}="{error}"}}'
        for error in (
            "CircuitOpen",
            "BulkheadFull",
            "RateLimited",
            "TimedOut",
            "ConnectionError",
            "ConnectError",
            "Throttled",
        )
    ]

    def missing() -> list[str]:
        return [series for series in expected if not prometheus.query(f"{series} > 0")]

    assert _eventually(missing, deadline) == []
    # The feed refuses every call: the acceptance ratio the throttle exports falls.
    assert prometheus.query(f'{n.THROTTLE_ACCEPTANCE}{{{p}="feed"}} < 0.5')
    # A gauge's capacity is the bulkhead's configuration, read as it is.
    assert prometheus.query(f'{n.BULKHEAD_CAPACITY}{{{p}="reports"}}')[0]["value"][1] == "1"


def test_the_handlers_degrade_gracefully(stack: Stack) -> None:
    """Every refusal met a fallback: only /fail ever answered a 5xx."""
    stack.traffic.wait_for_rounds(2)
    statuses = {path: dict(stack.traffic.statuses[path]) for path in PATHS}
    assert statuses["/fail"].keys() == {500}
    assert statuses["/busy"].keys() <= {200, REFUSED_PATHS["/busy"]}
    assert REFUSED_PATHS["/busy"] in statuses["/busy"]
    steady = {"/fail", *REFUSED_PATHS}
    assert {path: s.keys() for path, s in statuses.items() if path not in steady} == {
        path: {200} for path in PATHS if path not in steady
    }


def test_outbound_error_ratio_counts_unanswered_requests(
    prometheus: Prometheus, deadline: float
) -> None:
    """The upstream answers some 5xx; the dependency that is down never answers at all."""
    panel = next(
        p
        for p in buttress.dashboards.load("buttress-service")["panels"]
        if p["title"] == "Outbound error ratio by server"
    )
    expr = _fill(panel["targets"][0]["expr"], {"job": JOB, "instance": ".*"})

    def ratios() -> dict[str, float]:
        return {r["metric"][SERVER]: float(r["value"][1]) for r in prometheus.query(expr)}

    def not_yet() -> list[str]:
        found = ratios()
        return [] if {"127.0.0.1", "127.0.0.2"} <= found.keys() else [f"only {found}"]

    assert _eventually(not_yet, deadline) == []
    found = ratios()
    assert found["127.0.0.2"] == 1.0
    assert 0.0 < found["127.0.0.1"] < 1.0
