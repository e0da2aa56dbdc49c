"""Job SLOs (``signal="jobs"``): success ratio and processing latency, proven by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from buttress import ConfigurationError
from buttress import names as n
from buttress.slo import SLO, slo_rules
from buttress.telemetry._rules import ALERT_NAME, render_rules
from buttress.telemetry._slo import slos_from_document

from .._services import require_binary

COUNT = n.MESSAGING_PROCESS_DURATION + "_count"
BUCKET = n.MESSAGING_PROCESS_DURATION + "_bucket"
DEST, OUTCOME = n.LABEL_MESSAGING_DESTINATION, n.LABEL_OUTCOME
MINUTES = 240

SLOS = [
    # orders: 95 successes and 5 dead letters a minute, plus 100 retried deliveries and
    # 100 duplicates that are neither good nor bad: 5% of 100 ended badly, 5x the budget.
    SLO("success", service="worker", objective=0.99, signal="jobs", destinations=["orders"]),
    # reports: half of the deliveries that did work took over a second: 50x the budget.
    # 1000 fast duplicates a minute would hide it if they counted.
    SLO(
        "latency",
        service="worker",
        objective=0.99,
        threshold=1.0,
        signal="jobs",
        destinations=["reports"],
    ),
    # Every message of every destination: emails dead-letters all it gets, so this burns.
    SLO("all", service="mailer", objective=0.999, signal="jobs"),
]


def _series(
    job: str, destination: str, outcome: str, per_minute: int, le: str = ""
) -> dict[str, str]:
    metric = BUCKET if le else COUNT
    labels = f'job="{job}",{DEST}="{destination}",{OUTCOME}="{outcome}"'
    if le:
        labels += f',le="{le}"'
    return {"series": f"{metric}{{{labels}}}", "values": f"0+{per_minute}x{MINUTES}"}


def _input() -> list[dict[str, str]]:
    return [
        _series("worker", "orders", n.JOB_SUCCESS, 95),
        _series("worker", "orders", n.JOB_DEAD_LETTER, 5),
        _series("worker", "orders", n.JOB_RETRY, 100),
        _series("worker", "orders", n.JOB_DUPLICATE, 100),
        # Another destination's failures are not orders'.
        _series("worker", "emails", n.JOB_DEAD_LETTER, 500),
        _series("worker", "reports", n.JOB_SUCCESS, 100),
        _series("worker", "reports", n.JOB_SUCCESS, 50, le="1.0"),
        _series("worker", "reports", n.JOB_DUPLICATE, 1000),
        _series("worker", "reports", n.JOB_DUPLICATE, 1000, le="1.0"),
        _series("mailer", "emails", n.JOB_SUCCESS, 90),
        _series("mailer", "emails", n.JOB_EXPIRED, 10),
    ]


def _alert(rules: dict[str, Any], slo: SLO, severity: str, burn: str) -> dict[str, Any]:
    rule = next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == ALERT_NAME
        and r["labels"]["sloth_id"] == slo.id
        and r["labels"]["sloth_severity"] == severity
    )
    annotations = {
        k: v.replace("{{ $value | humanize }}", burn) for k, v in rule["annotations"].items()
    }
    return {"exp_labels": dict(rule["labels"]), "exp_annotations": annotations}


@pytest.fixture
def rules() -> dict[str, Any]:
    # Per test, not per module: `make mutate` selects the tests that reach each mutant,
    # and a module-scoped fixture would hide these tests from that selection.
    return slo_rules(SLOS)


@pytest.mark.prometheus
def test_promtool_fires_job_alerts_exactly_when_they_should(
    rules: dict[str, Any], tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    success, latency, everything = SLOS
    groups = [g["name"] for g in rules["groups"]]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        # Recordings, then meta rules, then alerts: each reads this evaluation's values.
        "group_eval_order": sorted(groups, key=lambda g: ("-sli-" not in g, "-meta-" not in g)),
        "tests": [
            {
                "interval": "1m",
                "input_series": _input(),
                "alert_rule_test": [
                    {
                        "eval_time": "200m",
                        "alertname": ALERT_NAME,
                        "exp_alerts": [
                            _alert(rules, success, "ticket", "5"),  # 5% / 1%: never a page
                            _alert(rules, latency, "page", "50"),
                            _alert(rules, latency, "ticket", "50"),
                            _alert(rules, everything, "page", "100"),  # 10% / 0.1%
                            _alert(rules, everything, "ticket", "100"),
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text(render_rules(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    check = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-8000:]


def test_job_slis_read_the_jobs_histogram(rules: dict[str, Any]) -> None:
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r]
    text = "\n".join(exprs)
    assert n.HTTP_SERVER_DURATION not in text
    assert f'{DEST}="orders"' in text
    assert f'{OUTCOME}=~"dead_letter|expired"' in text


_BOUNDARIES = "0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signal": "queues"}, "field 'signal': 'queues': use 'http' or 'jobs'"),
        (
            {"destinations": ["orders"]},
            "field 'destinations': only a jobs SLO (signal='jobs') takes it",
        ),
        (
            {"signal": "http", "destinations": ["orders"]},
            "field 'destinations': only a jobs SLO (signal='jobs') takes it",
        ),
        (
            {"signal": "jobs", "routes": ["/x"]},
            "field 'routes': a jobs SLO selects destinations, not routes",
        ),
        (
            {"signal": "jobs", "threshold": 0.3},
            f"field 'threshold': 0.3 s is not a jobs histogram boundary ({_BOUNDARIES})",
        ),
        (
            {"signal": "jobs", "destinations": []},
            "field 'destinations': empty: omit it (None) to select all",
        ),
    ],
)
def test_bad_job_slos_name_the_field_and_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        SLO("x", service="worker", objective=0.99, **options)
    assert str(raised.value) == f"SLO 'x', {message}"


def test_a_jobs_slo_keeps_its_destinations_and_an_http_slo_its_routes() -> None:
    jobs = SLO("j", service="worker", objective=0.99, signal="jobs", destinations=["orders"])
    assert (jobs.signal, jobs.destinations, jobs.routes) == ("jobs", ("orders",), None)
    every = SLO("e", service="worker", objective=0.99, signal="jobs", threshold=2.5)
    assert (every.destinations, every.threshold) == (None, 2.5)
    http = SLO("h", service="api", objective=0.99, routes=["/x"])
    assert (http.signal, http.destinations, http.routes) == ("http", None, ("/x",))


def test_job_slos_load_from_yaml() -> None:
    [slo] = slos_from_document(
        {
            "service": "worker",
            "slos": [
                {
                    "name": "orders",
                    "objective": 0.99,
                    "signal": "jobs",
                    "destinations": ["orders"],
                    "threshold": "2.5s",
                }
            ],
        }
    )
    assert (slo.signal, slo.destinations, slo.threshold) == ("jobs", ("orders",), 2.5)


def _recorded(slo: SLO) -> dict[str, str]:
    rules = slo_rules([slo])
    return {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def _description(slo: SLO) -> str:
    rules = slo_rules([slo])
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    return str(alerts[0]["annotations"]["description"])


def test_several_destinations_are_one_escaped_alternation() -> None:
    slo = SLO("m", service="w", objective=0.99, signal="jobs", destinations=["orders", "a.b"])
    total = _recorded(slo)["slo:sli_total:increase5m"]
    # "a.b" must not match "axb": the dot is escaped for the regex, then for PromQL.
    assert f'{DEST}=~"orders|a\\\\.b"' in total
    assert "99% of messages processed without being dead-lettered over" in _description(slo)
    # Its burn alert counts messages, not requests.
    assert _description(slo).endswith("with at least 3 bad messages in the long window.")


@pytest.mark.parametrize("successful_only", [True, False])
def test_a_latency_slo_counts_work_done_and_its_good_events_follow_successful_only(
    successful_only: bool,
) -> None:
    slo = SLO(
        "l",
        service="w",
        objective=0.99,
        signal="jobs",
        threshold=1.0,
        successful_only=successful_only,
    )
    recorded = _recorded(slo)
    # Every delivery that did work is an event, whatever its outcome; duplicates are not.
    total = recorded["slo:sli_total:increase5m"].strip()
    assert total == (f'(sum(increase({COUNT}{{job="w",{OUTCOME}!="duplicate"}}[5m])) or vector(0))')
    errors = recorded["slo:sli_error:increase5m"]
    good = f'{OUTCOME}="success"' if successful_only else f'{OUTCOME}!="duplicate"'
    # Both spellings of the 1 s boundary, the dot escaped as in the destination matcher.
    assert f'{BUCKET}{{job="w",le=~"1|1\\\\.0",{good}}}' in errors
    ok = " and successfully" if successful_only else ""
    assert f"(latency: 99% of messages processed in under 1s{ok} over 30 days;" in (
        _description(slo)
    )
