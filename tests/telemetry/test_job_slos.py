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


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
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


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"signal": "queues"}, "signal"),
        ({"destinations": ["orders"]}, "destinations"),
        ({"signal": "jobs", "routes": ["/x"]}, "routes"),
        ({"signal": "jobs", "threshold": 0.3}, "threshold"),
        ({"signal": "jobs", "destinations": []}, "destinations"),
    ],
)
def test_bad_job_slos_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"field '{field}'"):
        SLO("x", service="worker", objective=0.99, **options)


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
