"""Every dashboard query and every recording rule returns data from a real Prometheus.

A real app on 127.0.0.1 gets real traffic; a real Prometheus (the Debian package) scrapes
it every second with the generated rules loaded. Bounded: the traffic stops itself after
a capped number of requests, and the polling after 45 seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

import buttress.dashboards
from buttress import SLO, slo_rules
from buttress.events import default_registry
from buttress.telemetry import _names as n
from buttress.telemetry._rules import SLI_WINDOWS, escape_regex
from buttress.telemetry._slo import buckets_with_thresholds

from .._services import require_binary
from ._live import Prometheus, ServiceUnderTest, serve, stand_in_service, traffic

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

JOB = "checkout"
RATE_INTERVAL = "15s"  # 15 scrapes at 1s: rate() has enough samples within seconds
DEADLINE = 45.0

SLOS = [
    SLO("availability", service=JOB, objective=0.999),
    # 300 ms is not a default boundary: the app's buckets must include it.
    SLO("latency", service=JOB, objective=0.99, threshold=0.3),
    # A template with regex metacharacters, matched exactly.
    SLO("items", service=JOB, objective=0.999, routes=["/items/{item_id}", "/"]),
]
BUCKETS = buckets_with_thresholds(SLOS)


@pytest.fixture(scope="module")
def service_under_test() -> ServiceUnderTest:
    # The stand-in until the middleware lands; then build the app with it here.
    return stand_in_service(BUCKETS)


@pytest.fixture(autouse=True)
def _listening(service_under_test: ServiceUnderTest) -> Iterator[None]:
    for listener in service_under_test.listeners:
        default_registry.add(listener)
    yield
    for listener in service_under_test.listeners:
        default_registry.remove(listener)


@pytest.fixture(scope="module")
def prometheus(service_under_test: ServiceUnderTest) -> Iterator[Prometheus]:
    binary = require_binary("prometheus")
    rules = slo_rules(SLOS, buckets=BUCKETS)
    with (
        serve(service_under_test.app) as port,
        traffic(port, service_under_test),
        Prometheus(binary, job=JOB, target_port=port, rules=rules) as server,
    ):
        yield server


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


def _dashboard_failures(prometheus: Prometheus, dashboard: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = _fill(variable["query"], values)
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", query, re.S)
        assert match, query
        found = prometheus.label_values(*match.groups())
        if not found:
            return [f"variable {variable['name']}: {query} lists nothing"]
        values[variable["name"]] = _regex_value(found)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = _fill(target["expr"], values)
            assert "$" not in expr.replace("${1}", ""), expr
            if not prometheus.query(expr):
                failures.append(f"{dashboard['uid']} / {panel['title']}: {expr}")
    return failures


@pytest.mark.parametrize("name", ["buttress-service", "buttress-slo", "buttress-resilience"])
def test_every_panel_query_returns_data(prometheus: Prometheus, name: str) -> None:
    dashboard = buttress.dashboards.load(name)
    failures = _eventually(
        lambda: _dashboard_failures(prometheus, dashboard), time.monotonic() + DEADLINE
    )
    assert failures == []


def test_recording_rules_return_data(prometheus: Prometheus) -> None:
    records = [f"{n.SLO_SLI_ERROR_RATIO}{w}" for w in (*SLI_WINDOWS, "30d")] + [
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
            for slo in SLOS
            for record in records
            if not prometheus.query(f'{record}{{{n.LABEL_SLO_ID}="{slo.id}"}}')
        ]

    assert _eventually(missing, time.monotonic() + DEADLINE) == []


def test_slis_read_the_traffic(prometheus: Prometheus) -> None:
    """One request in six fails and one in six is slow; the selected routes never fail."""

    def ratio(slo: str) -> float:
        result = prometheus.query(f'{n.SLO_SLI_ERROR_RATIO}5m{{{n.LABEL_SLO_ID}="{JOB}-{slo}"}}')
        assert len(result) == 1
        return float(result[0]["value"][1])

    deadline = time.monotonic() + DEADLINE
    assert (
        _eventually(lambda: [] if ratio("availability") > 0 else ["no errors yet"], deadline) == []
    )
    assert 0.05 < ratio("availability") < 0.35
    assert 0.05 < ratio("latency") < 0.35
    # /fail's errors must not leak into an SLO over /items/{item_id} and /.
    assert ratio("items") == 0.0
