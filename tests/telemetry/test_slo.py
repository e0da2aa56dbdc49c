"""The SLO model, the YAML file format and the bucket merge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from buttress import ButtressWarning, ConfigurationError
from buttress.slo import SLO, load_slos
from buttress.telemetry._names import DURATION_BUCKETS
from buttress.telemetry._slo import buckets_with_thresholds, parse_duration


def test_availability_defaults() -> None:
    slo = SLO("availability", service="checkout", objective=0.999)
    assert slo.kind == "availability"
    assert slo.threshold is None
    assert slo.routes is None
    assert slo.window == timedelta(days=30)
    assert slo.window_days == 30
    assert slo.selector == {"job": "checkout"}
    assert slo.id == "checkout-availability"
    assert slo.error_budget == 0.001


def test_slos_are_values() -> None:
    a = SLO("a", service="s", objective=0.99, labels={"team": "x"})
    assert a == SLO("a", service="s", objective=0.99, labels={"team": "x"})
    assert len({a, SLO("a", service="s", objective=0.99, labels={"team": "x"})}) == 1
    assert a != SLO("a", service="s", objective=0.99)
    with pytest.raises(AttributeError):
        a.objective = 0.5  # type: ignore[misc]


def test_latency_slo() -> None:
    slo = SLO(
        "fast",
        service="checkout",
        objective=0.99,
        threshold=timedelta(milliseconds=250),
        routes=["/cart/{id}", "/cart/{id}"],
        window=timedelta(days=28),
        selector={},
    )
    assert slo.kind == "latency"
    assert slo.threshold == 0.25
    assert slo.routes == ("/cart/{id}",)
    assert slo.window_days == 28
    assert slo.selector == {}


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"objective": 99.9}, "objective", "percentage"),
        ({"objective": 1}, "objective", "1"),
        ({"objective": 0}, "objective", "0"),
        ({"objective": "0.9"}, "objective", "'0.9'"),
        ({"threshold": -1}, "threshold", "-1"),
        ({"threshold": True}, "threshold", "True"),
        ({"routes": []}, "routes", "empty"),
        ({"routes": [""]}, "routes", "''"),
        ({"window": timedelta(hours=36)}, "window", "whole number of days"),
        ({"window": 400 * 86400}, "window", "366"),
        ({"min_errors": 0}, "min_errors", "0"),
        ({"min_errors": True}, "min_errors", "True"),
        ({"window": timedelta(days=2)}, "window", "slow ticket"),
        ({"alert_name": "has-dash"}, "alert_name", "has-dash"),
        ({"successful_only": True}, "successful_only", "latency"),
        ({"runbook_url": 3}, "runbook_url", "3"),
        ({"labels": {"bad-name": "x"}}, "labels", "bad-name"),
        ({"labels": {"sloth_id": "x"}}, "labels", "sloth_id"),
        ({"selector": {"job": ["x"]}}, "selector", "job"),
        ({"service": "has space"}, "service", "has space"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str, value: str) -> None:
    arguments: dict[str, object] = {"service": "svc", "objective": 0.99, **kwargs}
    with pytest.raises(ConfigurationError, match=f"SLO 'x', field '{field}'") as info:
        SLO("x", **arguments)  # type: ignore[arg-type]
    assert value in str(info.value)


def test_bad_name() -> None:
    with pytest.raises(ConfigurationError, match="field 'name'"):
        SLO("no spaces", service="s", objective=0.9)


def test_buckets_with_thresholds() -> None:
    slos = [
        SLO("a", service="s", objective=0.99, threshold=0.3),
        SLO("b", service="s", objective=0.99, threshold=0.25),  # already a boundary
        SLO("c", service="s", objective=0.99),
    ]
    buckets = buckets_with_thresholds(slos)
    assert buckets == tuple(sorted({*DURATION_BUCKETS, 0.3}))
    assert buckets_with_thresholds(slos, base=(1.0,)) == (0.25, 0.3, 1.0)
    assert buckets_with_thresholds([]) == tuple(DURATION_BUCKETS)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30d", 2592000.0),
        ("1h30m", 5400.0),
        ("0.5", 0.5),
        (2, 2.0),
        ("1w", 604800.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "1x", "m", True, None])
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration(text)


EXAMPLE = """\
version: 1
service: checkout
labels:
  team: payments
slos:
  - name: availability
    objective: 0.999
    routes: ["/cart/{id}", "/pay"]
    description: Checkout answers without server errors.
  - name: latency
    objective: 0.99
    threshold: 250ms
    window: 4w
    min_errors: 5
    successful_only: true
    alert_name: CheckoutLatency
    runbook_url: https://runbooks.example/latency
    labels:
      tier: "1"
  - name: search
    service: search
    objective: 0.995
    selector: {job: search-api, namespace: prod}
"""


def test_load_slos(tmp_path: Path) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text(EXAMPLE)
    availability, latency, search = load_slos(path)
    assert availability == SLO(
        "availability",
        service="checkout",
        objective=0.999,
        routes=("/cart/{id}", "/pay"),
        labels={"team": "payments"},
        description="Checkout answers without server errors.",
    )
    assert latency.threshold == 0.25
    assert latency.window_days == 28
    assert latency.min_errors == 5
    assert latency.successful_only
    assert latency.alert_name == "CheckoutLatency"
    assert latency.runbook_url == "https://runbooks.example/latency"
    assert latency.period == "4w"
    assert availability.period == "30d"
    assert availability.min_errors == 3
    assert latency.labels == {"team": "payments", "tier": "1"}
    assert search.service == "search"
    assert search.selector == {"job": "search-api", "namespace": "prod"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slos: [", "not valid YAML"),
        ("- 1", "must be a mapping"),
        ("slos: []", "field 'slos'"),
        ("version: 2\nslos: [{name: a}]", "field 'version'"),
        ("extra: 1\nslos: [{name: a}]", "unknown top-level field 'extra'"),
        ("slos: [{objective: 0.9, service: s}]", "SLO '#1', field 'name'"),
        ("slos: [{name: a, service: s}]", "SLO 'a', field 'objective': required"),
        ("slos: [{name: a, objective: 0.9}]", "SLO 'a', field 'service': required"),
        ("service: s\nslos: [{name: a, objective: 0.9, treshold: 1}]", "SLO 'a', field 'treshold'"),
        ("service: s\nslos: [{name: a, objective: 99}]", "SLO 'a', field 'objective'"),
        ("service: s\nslos: [{name: a, objective: 0.9, threshold: fast}]", "'threshold'"),
        ("service: s\nslos: [{name: a, objective: 0.9, window: 1h}]", "SLO 'a', field 'window'"),
        ("service: s\nslos: [{name: a, objective: 0.99, min_rate: 1}]", "use 'min_errors'"),
        ("service: s\nmin_rate: 1\nslos: [{name: a, objective: 0.99}]", "use 'min_errors'"),
        (
            "service: s\nslos: [{name: a, objective: 0.99}, {name: a, objective: 0.98}]",
            "SLO 'a', field 'name': declared twice",
        ),
    ],
)
def test_bad_files_name_file_slo_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_slos(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_slos(tmp_path / "nope.yaml")


def test_objectives_that_can_never_page_are_refused() -> None:
    # 1 - 0.8 = 20%: 14.4 x 20% and 6 x 20% are both error ratios over 1.
    with pytest.raises(ConfigurationError, match=r"'objective': 0\.8 can never page"):
        SLO("a", service="s", objective=0.8)
    # 0.93: 14.4 x 7% = 1.008, the 1h/5m page can never fire; the 6h/30m one can.
    with pytest.warns(ButtressWarning, match=r"14\.4x 1h/5m \(page\) condition can never fire"):
        SLO("a", service="s", objective=0.93)
    # On a 7-day period the factors are smaller (3.36, 1.4, 0.7, 0.23): 0.8 pages there.
    assert SLO("a", service="s", objective=0.8, window=timedelta(days=7)).period == "1w"
