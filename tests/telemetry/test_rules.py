"""SLO rules: their shape, and promtool proving the alerts fire and stay quiet when they should."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from buttress import SLO, ConfigurationError, slo_rules
from buttress.telemetry import _names as names
from buttress.telemetry._rules import ALERT_NAME, SLI_WINDOWS, escape_regex, render_rules
from buttress.telemetry._slo import buckets_with_thresholds

from .._services import require_binary

COUNT = names.HTTP_SERVER_DURATION + "_count"
BUCKET = names.HTTP_SERVER_DURATION + "_bucket"

# One SLO per scenario; each scenario's service is its own Prometheus job.
SLOS = [
    SLO("availability", service="fast", objective=0.999),  # 20% errors: pages
    SLO("availability", service="slow", objective=0.999),  # 0.5% errors (5x): ticket only
    SLO("availability", service="healthy", objective=0.999),  # 0.05% errors: silent
    SLO("availability", service="quiet", objective=0.999),  # 33% errors at 0.05/s: silent
    # The same quiet traffic without the low-traffic guard pages: the guard is what holds.
    SLO("unguarded", service="quiet", objective=0.999, min_rate=0),
    SLO("latency", service="sluggish", objective=0.99, threshold=0.25),  # half slow: pages
    # Failures after the status line count, client disconnects do not; the budget is
    # large enough that nothing fires.
    SLO("availability", service="truncated", objective=0.5),
    SLO(
        "checkout",
        service="routes",
        objective=0.99,
        routes=["/cart/{id}", "/pay"],
        labels={"team": "payments"},
    ),
]


def _availability(job: str, ok: int, bad: int, route: str = "/") -> list[dict[str, str]]:
    """Two counters growing by ``ok`` and ``bad`` requests a minute for three hours."""
    return [
        {
            "series": f'{COUNT}{{job="{job}",{names.LABEL_ROUTE}="{route}",'
            f'{names.LABEL_STATUS}="{status}"}}',
            "values": f"0+{per_minute}x180",
        }
        for status, per_minute in (("200", ok), ("500", bad))
    ]


def _input_series() -> list[dict[str, str]]:
    series = (
        _availability("fast", 480, 120)
        + _availability("slow", 597, 3)
        + _availability("healthy", 1999, 1)
        + _availability("quiet", 2, 1)
        # Only the exact routes count: a raw path and a longer template are other routes.
        + _availability("routes", 90, 10, "/cart/{id}")
        + _availability("routes", 100, 0, "/pay")
        + _availability("routes", 0, 100, "/cart/123")
        + _availability("routes", 0, 100, "/cart/{id}/items")
    )
    # A minute: 100 fine, 10 cut by an exception after a 200, 20 left by the client, 10 500s.
    for status, error_type, per_minute in (
        ("200", "", 100),
        ("200", "app.Broken", 10),
        ("200", names.ERROR_CLIENT_DISCONNECT, 20),
        ("500", "KeyError", 10),
    ):
        labels = (
            f'job="truncated",{names.LABEL_ROUTE}="/",{names.LABEL_STATUS}="{status}",'
            f'{names.LABEL_ERROR_TYPE}="{error_type}"'
        )
        series.append({"series": f"{COUNT}{{{labels}}}", "values": f"0+{per_minute}x180"})
    # 600 requests a minute, 300 of them under 250 ms.
    for le, per_minute in (("0.1", 100), ("0.25", 300), ("+Inf", 600)):
        labels = f'job="sluggish",{names.LABEL_ROUTE}="/",le="{le}"'
        series.append({"series": f"{BUCKET}{{{labels}}}", "values": f"0+{per_minute}x180"})
    series.append(
        {"series": f'{COUNT}{{job="sluggish",{names.LABEL_ROUTE}="/"}}', "values": "0+600x180"}
    )
    return series


def _alert(slo: SLO, severity: str, burn: str, rules: dict[str, Any]) -> dict[str, Any]:
    alert_rules = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    rule = next(
        r
        for r in alert_rules
        if r["labels"]["sloth_severity"] == severity and f'sloth_id="{slo.id}"' in r["expr"]
    )
    annotations = {
        k: v.replace("{{ $value | humanize }}", burn) for k, v in rule["annotations"].items()
    }
    labels = {
        **slo.labels,
        "sloth_id": slo.id,
        "sloth_service": slo.service,
        "sloth_slo": slo.name,
        **rule["labels"],
    }
    return {"exp_labels": labels, "exp_annotations": annotations}


def _by_id(slo_id: str) -> SLO:
    return next(s for s in SLOS if s.id == slo_id)


def _promtool_tests(rules: dict[str, Any]) -> dict[str, Any]:
    fast, slow = _by_id("fast-availability"), _by_id("slow-availability")
    quiet = _by_id("quiet-unguarded")
    sluggish, routes = _by_id("sluggish-latency"), _by_id("routes-checkout")
    firing = [
        # The burn rate quoted is the short window's: 20% errors / 0.1% budget = 200.
        _alert(fast, "page", "200", rules),
        _alert(fast, "ticket", "200", rules),
        _alert(slow, "ticket", "5", rules),
        _alert(quiet, "page", "333.3", rules),
        _alert(quiet, "ticket", "333.3", rules),
        _alert(sluggish, "page", "50", rules),
        _alert(sluggish, "ticket", "50", rules),
        # 10 of 200 requests a minute fail on the selected routes: 5x the 1% budget.
        _alert(routes, "ticket", "5", rules),
    ]
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _input_series(),
                "promql_expr_test": [
                    {
                        "expr": 'slo:sli_error:ratio_rate5m{sloth_service="routes"}',
                        "eval_time": "30m",
                        "exp_samples": [
                            {
                                "labels": 'slo:sli_error:ratio_rate5m{sloth_id="routes-checkout",'
                                'sloth_service="routes",sloth_slo="checkout",sloth_window="5m",'
                                'team="payments"}',
                                "value": 0.05,
                            }
                        ],
                    },
                    {
                        "expr": 'slo:sli_error:ratio_rate1h{sloth_service="sluggish"}',
                        "eval_time": "90m",
                        "exp_samples": [
                            {
                                "labels": 'slo:sli_error:ratio_rate1h{sloth_id="sluggish-latency",'
                                'sloth_service="sluggish",sloth_slo="latency",sloth_window="1h"}',
                                "value": 0.5,
                            }
                        ],
                    },
                    {
                        # (10 cut + 10 500s) / 140 requests.
                        "expr": 'round(slo:sli_error:ratio_rate5m{sloth_service="truncated"}, '
                        "0.0001)",
                        "eval_time": "30m",
                        "exp_samples": [
                            {
                                "labels": '{sloth_id="truncated-availability",'
                                'sloth_service="truncated",sloth_slo="availability",'
                                'sloth_window="5m"}',
                                "value": 0.1429,
                            }
                        ],
                    },
                    {
                        # 0.5% errors / 0.1% budget, rounded: promtool compares exactly.
                        "expr": 'round(slo:current_burn_rate:ratio{sloth_service="slow"}, 0.001)',
                        "eval_time": "90m",
                        "exp_samples": [
                            {
                                "labels": '{sloth_id="slow-availability",'
                                'sloth_service="slow",sloth_slo="availability"}',
                                "value": 5,
                            }
                        ],
                    },
                ],
                "alert_rule_test": [
                    # Before any traffic nothing fires.
                    {"eval_time": "0m", "alertname": ALERT_NAME, "exp_alerts": []},
                    # 150 minutes in: every scenario's windows hold data.
                    {"eval_time": "150m", "alertname": ALERT_NAME, "exp_alerts": firing},
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    return slo_rules(SLOS, buckets=buckets_with_thresholds(SLOS))


@pytest.mark.prometheus
def test_promtool_check_rules_passes(rules: dict[str, Any], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {17 * len(SLOS)} rules found" in result.stdout, result.stdout + result.stderr
    assert result.stderr == ""


@pytest.mark.prometheus
def test_promtool_unit_tests_prove_alerts(rules: dict[str, Any], tmp_path: Path) -> None:
    """Fast burn pages, slow burn tickets, healthy and quiet services stay silent."""
    promtool = require_binary("promtool")
    (tmp_path / "rules.yaml").write_text(render_rules(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(_promtool_tests(rules), sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_notices_a_wrong_expectation(rules: dict[str, Any], tmp_path: Path) -> None:
    """The promtool harness can fail: expecting the healthy service to page is refused."""
    promtool = require_binary("promtool")
    tests = _promtool_tests(rules)
    healthy = _by_id("healthy-availability")
    tests["tests"][0]["alert_rule_test"][1]["exp_alerts"].append(
        _alert(healthy, "page", "0.5", rules)
    )
    (tmp_path / "rules.yaml").write_text(render_rules(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


def test_sloth_names_and_labels(rules: dict[str, Any]) -> None:
    slo = SLOS[0]
    groups = {g["name"]: g["rules"] for g in rules["groups"]}
    recordings = groups[f"sloth-slo-sli-recordings-{slo.id}"]
    assert [r["record"] for r in recordings] == [
        *(f"slo:sli_error:ratio_rate{w}" for w in SLI_WINDOWS),
        "slo:sli_error:ratio_rate30d",
    ]
    assert recordings[0]["labels"] == {
        "sloth_id": "fast-availability",
        "sloth_service": "fast",
        "sloth_slo": "availability",
        "sloth_window": "5m",
    }
    meta = [r["record"] for r in groups[f"sloth-slo-meta-recordings-{slo.id}"]]
    assert meta == [
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ]
    alerts = groups[f"sloth-slo-alerts-{slo.id}"]
    assert [(a["labels"]["severity"], a["labels"]["sloth_severity"]) for a in alerts] == [
        ("critical", "page"),
        ("warning", "ticket"),
    ]
    for alert in alerts:
        assert "/d/buttress-slo/" in alert["annotations"]["dashboard"]
        assert "availability" in alert["annotations"]["description"]
        assert "0.1%" in alert["annotations"]["description"]  # the budget


def test_every_metric_name_comes_from_the_names_module(rules: dict[str, Any]) -> None:
    known = {v for v in vars(names).values() if isinstance(v, str)}
    known |= {f"{names.HTTP_SERVER_DURATION}_{s}" for s in ("count", "bucket", "sum")}
    known |= {f"{names.SLO_SLI_ERROR_RATIO}{w}" for w in (*SLI_WINDOWS, "28d", "30d")}
    used: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used.add(rule.get("record") or rule["alert"])
            expr = re.sub(r'"[^"]*"', '""', rule["expr"])  # label values are not names
            used |= set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", expr))
            labels = [
                *rule.get("labels", {}),
                *re.findall(r"\b(?:by|without|on|ignoring) \(([^)]*)\)", expr),
            ]
            for label in labels:
                used |= {name.strip() for name in label.split(",")}
    assert names.HTTP_SERVER_DURATION + "_count" in used
    assert names.SLO_OBJECTIVE in used
    assert used - {"team", ""} <= known, sorted(used - known)


def test_period_follows_the_window() -> None:
    slo = SLO("a", service="s", objective=0.99, window=28 * 86400)
    rules = slo_rules([slo])
    records = [r.get("record") for g in rules["groups"] for r in g["rules"]]
    assert "slo:sli_error:ratio_rate28d" in records
    days = next(
        r for g in rules["groups"] for r in g["rules"] if r.get("record") == "slo:time_period:days"
    )
    assert days["expr"] == "vector(28)"


def test_latency_threshold_must_be_a_bucket() -> None:
    slo = SLO("latency", service="s", objective=0.99, threshold=0.3)
    with pytest.raises(ConfigurationError, match=r"'latency'.*'threshold'.*0\.3"):
        slo_rules([slo])
    assert slo_rules([slo], buckets=buckets_with_thresholds([slo]))["groups"]


def test_no_slos_and_duplicates_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no SLOs"):
        slo_rules([])
    slo = SLO("a", service="s", objective=0.99)
    with pytest.raises(ConfigurationError, match="s-a"):
        slo_rules([slo, slo])


def test_description_is_an_annotation() -> None:
    slo = SLO("a", service="s", objective=0.99, description="Checkout answers.")
    alerts = [r for g in slo_rules([slo])["groups"] for r in g["rules"] if "alert" in r]
    assert [a["annotations"]["slo_description"] for a in alerts] == ["Checkout answers."] * 2


def test_dashboard_link_uses_the_grafana_url() -> None:
    rules = slo_rules([SLO("a", service="s", objective=0.99)], grafana_url="https://g.example/")
    alert = next(r for g in rules["groups"] for r in g["rules"] if "alert" in r)
    assert alert["annotations"]["dashboard"] == (
        "https://g.example/d/buttress-slo/buttress-slos?var-service=s&var-slo=a"
    )


@pytest.mark.parametrize(
    ("route", "pattern"),
    [
        ("/users/{id}", r"/users/\{id\}"),
        ("/a.b", r"/a\.b"),
        ("/x|y", r"/x\|y"),
        ("/files/*path", r"/files/\*path"),
        ("/plain-route_1", "/plain-route_1"),
    ],
)
def test_routes_are_escaped(route: str, pattern: str) -> None:
    assert escape_regex(route) == pattern
    assert re.fullmatch(escape_regex(route), route)


CLI_SLOS = """\
service: checkout
slos:
  - name: availability
    objective: 0.999
  - name: latency
    objective: 0.99
    threshold: 300ms
"""


def test_cli_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from buttress._cli import main

    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(CLI_SLOS)
    # 300 ms is not a default bucket boundary: refused, with the way out named.
    assert main(["rules", str(slo_file)]) == 2
    err = capsys.readouterr().err
    assert "'latency', field 'threshold'" in err
    assert "--buckets with-thresholds" in err
    out = tmp_path / "rules.yaml"
    assert main(["rules", str(slo_file), "--buckets", "with-thresholds", "-o", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    assert len(written["groups"]) == 6
    assert "wrote 6 rule groups for 2 SLOs" in capsys.readouterr().out
    assert main(["rules", str(slo_file), "--buckets", "0.1,0.3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["groups"][0]["rules"]
    assert main(["rules", str(slo_file), "--buckets", "fast"]) == 2
    assert "--buckets 'fast'" in capsys.readouterr().err


def test_cli_rules_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from buttress._cli import main

    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(CLI_SLOS)
    out = tmp_path / "missing-dir" / "rules.yaml"
    assert main(["rules", str(slo_file), "--buckets", "with-thresholds", "-o", str(out)]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_cli_rules_bad_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from buttress._cli import main

    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text("service: s\nslos: [{name: a, objective: 1.5}]\n")
    assert main(["rules", str(slo_file)]) == 2
    assert f"{slo_file}: SLO 'a', field 'objective'" in capsys.readouterr().err
