"""SLO rules: their shape, and promtool proving the alerts fire and stay quiet when they should."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import buttress
from buttress import ButtressWarning, ConfigurationError
from buttress.slo import SLO, slo_rules
from buttress.telemetry import _names as names
from buttress.telemetry._rules import (
    ABSENT_ALERT_NAME,
    ALERT_NAME,
    SLI_WINDOWS,
    escape_regex,
    render_rules,
)
from buttress.telemetry._slo import buckets_with_thresholds

from .._services import require_binary

COUNT = names.HTTP_SERVER_DURATION + "_count"
BUCKET = names.HTTP_SERVER_DURATION + "_bucket"
ROUTE, STATUS, ERROR_TYPE = names.LABEL_ROUTE, names.LABEL_STATUS, names.LABEL_ERROR_TYPE

# One SLO per scenario; each scenario's service is its own Prometheus job. The minute-level
# scenarios share one promtool test (evaluated every minute for four hours).
SLOS = [
    SLO("availability", service="fast", objective=0.999),  # 20% errors: pages
    SLO("availability", service="slow", objective=0.999),  # 0.5% errors (5x): ticket only
    SLO("availability", service="healthy", objective=0.999),  # 0.05% errors: silent
    # 1 request a minute; from minute 60 on every request fails: pages within minutes.
    SLO("availability", service="trickle", objective=0.999),
    # 1 request a minute; one stray error at minute 30: silent, thanks to the event guard...
    SLO("availability", service="stray", objective=0.999),
    # ...which is what holds: the same traffic with a guard of one event pages.
    SLO("unguarded", service="stray", objective=0.999, min_errors=1),
    # 20% errors for the first hour, none after: the page stops, the ticket goes on.
    SLO("availability", service="recovered", objective=0.999),
    # 1% errors; the process restarts at minute 60 and its counters start again.
    SLO("availability", service="restarted", objective=0.99),
    # 10% of responses fail after a 200 started (error_type); 10% are client disconnects.
    SLO("availability", service="broken", objective=0.99),
    SLO("latency", service="sluggish", objective=0.99, threshold=0.25),  # half slow: pages
    # Every response is fast, and 10% of them are 5xx: good for plain latency, bad here.
    SLO("latency", service="failing-fast", objective=0.99, threshold=0.25, successful_only=True),
    SLO(
        "checkout",
        service="routes",
        objective=0.99,
        routes=["/cart/{id}", "/pay"],
        labels={"team": "payments"},
        runbook_url="https://runbooks.example/checkout",
    ),
    # The service stops being scraped at minute 60: its metric is absent.
    SLO("availability", service="vanished", objective=0.999),
    # A service whose metric has no http_route label (OpenTelemetry's ASGI instrumentation):
    # an SLO over a route matches nothing, and says so.
    SLO("items", service="unrouted", objective=0.999, routes=["/items/{id}"]),
]

MINUTES = 240


def _series(job: str, values: str, route: str = "/", **labels: str) -> dict[str, str]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"series": f'{COUNT}{{job="{job}",{ROUTE}="{route}"{extra}}}', "values": values}


def _steady(job: str, ok: int, bad: int, route: str = "/") -> list[dict[str, str]]:
    """Two counters growing by ``ok`` and ``bad`` requests a minute for the whole test."""
    return [
        _series(job, f"0+{per_minute}x{MINUTES}", route, **{STATUS: status})
        for status, per_minute in (("200", ok), ("500", bad))
    ]


def _minute_series() -> list[dict[str, str]]:
    after = MINUTES - 60
    series = (
        _steady("fast", 480, 120)
        + _steady("slow", 597, 3)
        + _steady("healthy", 1999, 1)
        # Good requests stop at minute 60 (the counter stays at 60); failures start there.
        + [
            _series("trickle", f"0+1x60 60x{after}", **{STATUS: "200"}),
            _series("trickle", f"0x60 1+1x{after - 1}", **{STATUS: "500"}),
        ]
        # The 500 series exists from the start, at 0; one request fails at minute 30.
        + [
            _series("stray", f"0+1x{MINUTES}", **{STATUS: "200"}),
            _series("stray", f"0x30 1x{MINUTES - 31}", **{STATUS: "500"}),
        ]
        + [
            _series("recovered", f"0+480x60 29400+600x{after - 1}", **{STATUS: "200"}),
            _series("recovered", f"0+120x60 7200x{after - 1}", **{STATUS: "500"}),
        ]
        # After the restart the counters read 594 and 6 again: one minute's traffic.
        + [
            _series("restarted", f"0+594x59 594+594x{after}", **{STATUS: "200"}),
            _series("restarted", f"0+6x59 6+6x{after}", **{STATUS: "500"}),
        ]
        + [
            _series("broken", f"0+480x{MINUTES}", **{STATUS: "200"}),
            _series("broken", f"0+60x{MINUTES}", **{STATUS: "200", ERROR_TYPE: "RuntimeError"}),
            _series(
                "broken",
                f"0+60x{MINUTES}",
                **{STATUS: names.STATUS_CLIENT_CLOSED, ERROR_TYPE: names.ERROR_CLIENT_DISCONNECT},
            ),
        ]
        # Only the exact routes count: a raw path and a longer template are other routes.
        + _steady("routes", 90, 10, "/cart/{id}")
        + _steady("routes", 100, 0, "/pay")
        + _steady("routes", 0, 100, "/cart/123")
        + _steady("routes", 0, 100, "/cart/{id}/items")
        + [_series("vanished", f"0+100x60 _x{after}", **{STATUS: "200"})]
        + [
            {
                "series": f'{COUNT}{{job="unrouted",{STATUS}="200"}}',
                "values": f"0+100x{MINUTES}",
            }
        ]
    )
    # 600 requests a minute, 300 of them under 250 ms.
    for le, per_minute in (("0.1", 100), ("0.25", 300), ("+Inf", 600)):
        labels = f'job="sluggish",{ROUTE}="/",le="{le}"'
        series.append({"series": f"{BUCKET}{{{labels}}}", "values": f"0+{per_minute}x{MINUTES}"})
    series.append(_series("sluggish", f"0+600x{MINUTES}"))
    # 600 fast requests a minute, 60 of them 5xx.
    for status, per_minute in (("200", 540), ("500", 60)):
        for le in ("0.25", "+Inf"):
            labels = f'job="failing-fast",{ROUTE}="/",{STATUS}="{status}",le="{le}"'
            series.append(
                {"series": f"{BUCKET}{{{labels}}}", "values": f"0+{per_minute}x{MINUTES}"}
            )
        series.append(_series("failing-fast", f"0+{per_minute}x{MINUTES}", **{STATUS: status}))
    return series


def _alert(slo: SLO, severity: str, burn: str, rules: dict[str, Any]) -> dict[str, Any]:
    alert_rules = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    rule = next(
        r
        for r in alert_rules
        if r["labels"].get("sloth_severity") == severity and r["labels"]["sloth_id"] == slo.id
    )
    annotations = {
        k: v.replace("{{ $value | humanize }}", burn) for k, v in rule["annotations"].items()
    }
    return {"exp_labels": dict(rule["labels"]), "exp_annotations": annotations}


def _absent(slo: SLO, rules: dict[str, Any]) -> dict[str, Any]:
    rule = next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == ABSENT_ALERT_NAME and r["labels"]["sloth_id"] == slo.id
    )
    # absent() returns the equality matchers of its selector as labels.
    labels = {**rule["labels"], "job": slo.service}
    if slo.routes is not None and len(slo.routes) == 1:
        labels[ROUTE] = slo.routes[0]
    return {"exp_labels": labels, "exp_annotations": dict(rule["annotations"])}


def _by_id(slo_id: str) -> SLO:
    return next(s for s in SLOS if s.id == slo_id)


def _sample(expr: str, at: str, value: float, **labels: str) -> dict[str, Any]:
    """One expected sample; a bare recorded series keeps its name, a function drops it."""
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    name = "" if "(" in expr else expr.split("{")[0]
    return {
        "expr": expr,
        "eval_time": at,
        "exp_samples": [{"labels": f"{name}{{{body}}}", "value": value}],
    }


def _ids(slo_id: str, window: str | None = None) -> dict[str, str]:
    slo = next(s for s in (*SLOS, *PERIOD_SLOS) if s.id == slo_id)
    labels = {"sloth_id": slo_id, "sloth_service": slo.service, "sloth_slo": slo.name}
    return labels if window is None else {**labels, "sloth_window": window}


def _firing(service: str, severity: str, at: str, count: int) -> dict[str, Any]:
    """How many alerts of ``severity`` fire for ``service`` at ``at``: read from ALERTS."""
    alerts = f'ALERTS{{alertstate="firing",sloth_service="{service}",sloth_severity="{severity}"}}'
    return _sample(f"count({alerts}) or vector(0)", at, count)


def _eval_order(rules: dict[str, Any]) -> list[str]:
    """Recordings, then meta rules, then alerts: each reads this evaluation's values.

    Prometheus runs groups concurrently, so there an alert may read records one
    evaluation old; promtool would otherwise order them by name, alerts first.
    """
    groups = [g["name"] for g in rules["groups"]]
    return sorted(groups, key=lambda n: ("-sli-" not in n, "-meta-" not in n, n))


def _minute_tests(rules: dict[str, Any]) -> dict[str, Any]:
    by = _by_id

    def alert(slo_id: str, severity: str, burn: str) -> dict[str, Any]:
        return _alert(by(slo_id), severity, burn, rules)

    # The steady burns fire from their first minutes to the end. Each alert quotes its
    # short window's burn rate: error ratio / budget.
    steady = [
        alert("fast-availability", "page", "200"),  # 20% / 0.1%
        alert("fast-availability", "ticket", "200"),
        alert("slow-availability", "ticket", "5"),  # 0.5% / 0.1%: a ticket, never a page
        alert("broken-availability", "page", "10"),  # 60 of 600 failed after a 200: 10%/1%
        alert("broken-availability", "ticket", "10"),
        alert("sluggish-latency", "page", "50"),  # half of the requests slow: 50% / 1%
        alert("sluggish-latency", "ticket", "50"),
        alert("failing-fast-latency", "page", "10"),  # fast, but 10% are 5xx: 10% / 1%
        alert("failing-fast-latency", "ticket", "10"),
        # 10 of 200 requests a minute fail on the selected routes: 5x the 1% budget.
        alert("routes-checkout", "ticket", "5"),
    ]
    at_35m = [
        *steady,
        alert("recovered-availability", "page", "200"),
        alert("recovered-availability", "ticket", "200"),
        # The stray error (in minute 30-31) among 1 request a minute. 5m window (30, 35]:
        # 1 of 6 events, burn 166.7; 1h window: 1 of 36 = 2.8% > 1.44%: without the guard
        # it pages. 2h window: also 1 of 36, burn 27.78. The guarded SLO stays silent: 1
        # bad event < 3.
        alert("stray-unguarded", "page", "166.7"),
        alert("stray-unguarded", "ticket", "27.78"),
    ]
    at_64m = [
        *steady,
        # Four minutes into the outage at 1 request a minute: 5m window (59, 64]: 1 good,
        # 4 failed, burn 800; 1h window: 4 of 60 = 6.7% > 1.44%, 4 bad events >= 3: page.
        # 2h window (everything since 0): 4 of 64, burn 62.5.
        alert("trickle-availability", "page", "800"),
        alert("trickle-availability", "ticket", "62.5"),
        # Recovered at minute 60. 5m window: 120 bad of 120 + 480 + 4 x 600 = 3000, burn
        # 40 (the page holds until the 30m window is clean, at minute 90). 2h window:
        # 7200 bad of 7200 + 60 x 480 + 4 x 600 = 38400, burn 187.5.
        alert("recovered-availability", "page", "40"),
        alert("recovered-availability", "ticket", "187.5"),
        # The stray error is no longer in the 5m window: no page; 2h window 1 of 65.
        alert("stray-unguarded", "ticket", "15.38"),
    ]
    at_150m = [
        *steady,
        alert("trickle-availability", "page", "1k"),  # every request of 5m failed
        # 2h window [30m, 150m]: 30 good (until 60), 90 failed: 0.75 / 0.001.
        alert("trickle-availability", "ticket", "750"),
        # Recovered for 90 minutes: no page. 2h window: 30 x 120 = 3600 bad among
        # 30 x 600 + 90 x 600 = 72000: 5% / 0.1% = 50. The ticket goes on.
        alert("recovered-availability", "ticket", "50"),
        # 2h window: 120 good and the stray error: 1 / 121, burn 8.264.
        alert("stray-unguarded", "ticket", "8.264"),
    ]
    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "group_eval_order": _eval_order(rules),
        "tests": [
            {
                "interval": "1m",
                "input_series": _minute_series(),
                "promql_expr_test": [
                    # The recording rules themselves, by hand:
                    # routes: (10 errors) / (90 + 10 + 100) a minute = 0.05.
                    _sample(
                        'slo:sli_error:ratio_rate5m{sloth_service="routes"}',
                        "30m",
                        0.05,
                        **_ids("routes-checkout", "5m"),
                        team="payments",
                    ),
                    # 200 requests a minute on the two routes: 6000 in 30 minutes.
                    _sample(
                        'slo:sli_total:increase30m{sloth_service="routes"}',
                        "60m",
                        6000,
                        **_ids("routes-checkout", "30m"),
                        team="payments",
                    ),
                    _sample(
                        'slo:sli_error:ratio_rate1h{sloth_service="sluggish"}',
                        "90m",
                        0.5,
                        **_ids("sluggish-latency", "1h"),
                    ),
                    # 0.5% errors / 0.1% budget, rounded: promtool compares exactly.
                    _sample(
                        'round(slo:current_burn_rate:ratio{sloth_service="slow"}, 0.001)',
                        "90m",
                        5,
                        **_ids("slow-availability"),
                    ),
                    # 60 failed after a 200 of 600 (the 60 disconnects are not failures): 0.1.
                    _sample(
                        'round(slo:sli_error:ratio_rate1h{sloth_service="broken"}, 0.0001)',
                        "90m",
                        0.1,
                        **_ids("broken-availability", "1h"),
                    ),
                    _sample(
                        'round(slo:sli_error:ratio_rate1h{sloth_service="failing-fast"}, 0.0001)',
                        "90m",
                        0.1,
                        **_ids("failing-fast-latency", "1h"),
                    ),
                    # Across the restart (minute 60) the hour from 30 to 90 still reads
                    # 60 x 600 = 36000 requests and 1% of them failed: nothing lost, no spike.
                    _sample(
                        'round(slo:sli_total:increase1h{sloth_service="restarted"})',
                        "90m",
                        36000,
                        **_ids("restarted-availability", "1h"),
                    ),
                    _sample(
                        'round(slo:sli_error:ratio_rate1h{sloth_service="restarted"}, 0.0001)',
                        "90m",
                        0.01,
                        **_ids("restarted-availability", "1h"),
                    ),
                    # recovered, 2h window at minute 150 (minutes 30..150): 30 minutes of
                    # 120 errors = 3600 bad among 30 x 600 + 90 x 480... the good counter
                    # grows 480 then 600 a minute: good = 30 x 480 + 90 x 600 = 68400,
                    # bad = 3600, ratio 3600 / 72000 = 0.05.  (Ticket burn: 50; the 1d/2h
                    # condition is what fires, and it quotes the 2h ratio.)
                    _sample(
                        'round(slo:sli_error:ratio_rate2h{sloth_service="recovered"}, 0.0001)',
                        "150m",
                        0.05,
                        **_ids("recovered-availability", "2h"),
                    ),
                    # Recovery: the burn ended at minute 60. At 89 the 30m window still holds
                    # minute 59-60's errors (120 of 18000 = 0.67% > 6 x 0.1%): paging; at 91
                    # it is clean and the page is over, while the ticket goes on.
                    _firing("recovered", "page", "89m", 1),
                    _firing("recovered", "page", "91m", 0),
                    _firing("recovered", "ticket", "91m", 1),
                    # The slow burn (5x) tickets and never pages.
                    _firing("slow", "page", "150m", 0),
                    _firing("slow", "ticket", "150m", 1),
                    # The stray error is one event in the hour: under the guard of 3.
                    _sample(
                        'round(slo:sli_error:increase1h{sloth_slo="availability",'
                        'sloth_service="stray"})',
                        "35m",
                        1,
                        **_ids("stray-availability", "1h"),
                    ),
                ],
                "alert_rule_test": [
                    # Before any traffic nothing fires.
                    {"eval_time": "0m", "alertname": ALERT_NAME, "exp_alerts": []},
                    {"eval_time": "35m", "alertname": ALERT_NAME, "exp_alerts": at_35m},
                    {"eval_time": "64m", "alertname": ALERT_NAME, "exp_alerts": at_64m},
                    {"eval_time": "150m", "alertname": ALERT_NAME, "exp_alerts": at_150m},
                    # The metric-absent alert: not at the start (it waits 10 minutes)...
                    {"eval_time": "5m", "alertname": ABSENT_ALERT_NAME, "exp_alerts": []},
                    # ...then for the SLO over a route the service does not label...
                    {
                        "eval_time": "30m",
                        "alertname": ABSENT_ALERT_NAME,
                        "exp_alerts": [_absent(by("unrouted-items"), rules)],
                    },
                    # ...and, 5 minutes of staleness plus 10 after its last scrape at
                    # minute 60, for the service that vanished.
                    {
                        "eval_time": "80m",
                        "alertname": ABSENT_ALERT_NAME,
                        "exp_alerts": [
                            _absent(by("vanished-availability"), rules),
                            _absent(by("unrouted-items"), rules),
                        ],
                    },
                ],
            }
        ],
    }


@pytest.fixture
def rules() -> dict[str, Any]:
    return slo_rules(SLOS, buckets=buckets_with_thresholds(SLOS))


def _promtool_test(rules: dict[str, Any], tests: dict[str, Any], tmp_path: Path) -> None:
    """``promtool test rules`` on ``tests`` passes."""
    promtool = require_binary("promtool")
    (tmp_path / "rules.yaml").write_text(render_rules(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-8000:]
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_check_rules_passes(rules: dict[str, Any], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Per SLO: 3 rules for each of 8 windows, 7 meta rules, 2 burn alerts, 1 absent alert.
    assert f"SUCCESS: {34 * len(SLOS)} rules found" in result.stdout, result.stdout
    assert result.stderr == ""


@pytest.mark.prometheus
def test_promtool_minute_scenarios(rules: dict[str, Any], tmp_path: Path) -> None:
    """Fast and slow burns, an outage at 1 request a minute, a stray error, recovery,
    a counter reset, failures after a 200, latency with and without failures, absence."""
    _promtool_test(rules, _minute_tests(rules), tmp_path)


@pytest.mark.prometheus
def test_promtool_notices_a_wrong_expectation(rules: dict[str, Any], tmp_path: Path) -> None:
    """The promtool harness can fail: expecting the guarded stray error to page is refused."""
    promtool = require_binary("promtool")
    tests = _minute_tests(rules)
    stray = _by_id("stray-availability")
    tests["tests"][0]["alert_rule_test"][1]["exp_alerts"].append(
        _alert(stray, "page", "200", rules)
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
    assert "stray" in result.stdout + result.stderr


# --- the period: counter increases over days, one sample an hour ------------------------

DAY_HOURS = 24
PERIOD_SLOS = [
    SLO("availability", service="diurnal", objective=0.999, window=timedelta(days=7)),
    SLO("availability", service="idle", objective=0.99, window=timedelta(days=7)),
    SLO("availability", service="silent", objective=0.999, window=timedelta(days=7)),
    *(
        SLO("availability", service=f"period-{days}d", objective=0.99, window=timedelta(days=days))
        for days in (3, 7, 14, 28, 30)
    ),
]


def _hourly(job: str, per_hour: list[int], **labels: str) -> dict[str, str]:
    """A counter from hourly increments: sample h is the sum of the first h increments."""
    values, total = ["0"], 0
    for step in per_hour:
        total += step
        values.append(str(total))
    return _series(job, " ".join(values), **labels)


def _diurnal() -> list[dict[str, str]]:
    # 7 days of 12 day hours at 6000 requests and 12 night hours at 60. Ten night hours
    # (the first ten nights' hour 0 would be too few: spread over the week) hold one
    # failed request each.
    good = [6000 if hour % 24 < 12 else 60 for hour in range(7 * DAY_HOURS)]
    night = [hour for hour in range(7 * DAY_HOURS) if hour % 24 >= 12]
    failing = set(night[:: len(night) // 10][:10])
    bad = [1 if hour in failing else 0 for hour in range(7 * DAY_HOURS)]
    return [
        _hourly("diurnal", good, **{STATUS: "200"}),
        _hourly("diurnal", bad, **{STATUS: "500"}),
    ]


def _idle() -> list[dict[str, str]]:
    # 24 hours of 1000 good and 1 failed request an hour, 48 idle hours (the counters stay
    # where they are), then 24 hours of 1000 good requests an hour.
    good = [1000] * 24 + [0] * 48 + [1000] * 24
    bad = [1] * 24 + [0] * 72
    return [_hourly("idle", good, **{STATUS: "200"}), _hourly("idle", bad, **{STATUS: "500"})]


def _periods() -> list[dict[str, str]]:
    # For each period P: 1000 good requests an hour for P + 2 days, and 1 failed request an
    # hour during the first day only.
    series = []
    for days in (3, 7, 14, 28, 30):
        hours = (days + 2) * DAY_HOURS
        series += [
            _hourly(f"period-{days}d", [1000] * hours, **{STATUS: "200"}),
            _hourly(f"period-{days}d", [1] * 24 + [0] * (hours - 24), **{STATUS: "500"}),
        ]
    return series


def _remaining(job: str, at: str, value: float) -> dict[str, Any]:
    return _sample(
        f'round(slo:period_error_budget_remaining:ratio{{sloth_service="{job}"}}, 0.0001)',
        at,
        value,
        **_ids(f"{job}-availability"),
    )


def _period_tests(rules: dict[str, Any]) -> dict[str, Any]:
    hand = [
        # diurnal, at the end of the week: 7 x (12 x 6000 + 12 x 60) = 509040 good and 10
        # failed requests. Traffic-weighted: 10 / 509050 = 1.964e-5 of a 0.1% budget:
        # 1.96% spent, 98.04% left. (Averaging per-window ratios instead, ten night hours
        # at 1/61 count as much as day hours of 6000 good requests: 10 x (1/61) / 168 =
        # 9.76e-4, 97.6% of the budget spent.)
        _remaining("diurnal", "168h", 0.9804),
        _sample(
            'slo:sli_total:increase1w{sloth_service="diurnal"}',
            "168h",
            509050,
            **_ids("diurnal-availability", "1w"),
        ),
        # idle, at hour 30 (the first day's 24 errors among 24024 requests, nothing since):
        # 24 / 24024 = 9.99e-4 of a 1% budget: 9.99% spent, 90.01% left ...
        _remaining("idle", "30h", 0.9001),
        # ... the same at hour 66, after 42 idle hours: no traffic, budget unchanged ...
        _remaining("idle", "66h", 0.9001),
        # ... while the idle windows read 0, never NaN.
        _sample(
            'slo:sli_error:ratio_rate1h{sloth_service="idle"}',
            "48h",
            0,
            **_ids("idle-availability", "1h"),
        ),
        # ... and after 24 more hours of good traffic: 24 / 48024 = 5.0e-4, 5% spent.
        _remaining("idle", "96h", 0.95),
        # silent exports no series at all: the whole budget is left, the ratio is 0 (its
        # absent-metric alert says why).
        _remaining("silent", "96h", 1),
        _sample(
            'slo:sli_error:ratio_rate1w{sloth_service="silent"}',
            "96h",
            0,
            **_ids("silent-availability", "1w"),
        ),
    ]
    # Each period P at hour 24 P: the window holds the first day's 24 errors among
    # 24 P x 1000 + 24 requests; two days later they are out of it and the budget is whole.
    # 3d: 24 / 72024 = 3.33e-4 of 1% -> 96.67% left; 1w: 24 / 168024 -> 98.57%;
    # 2w: 24 / 336024 -> 99.29%; 4w: 24 / 672024 -> 99.64%; 30d: 24 / 720024 -> 99.67%.
    for days, left in ((3, 0.9667), (7, 0.9857), (14, 0.9929), (28, 0.9964), (30, 0.9967)):
        hand += [
            _remaining(f"period-{days}d", f"{days * DAY_HOURS}h", left),
            _remaining(f"period-{days}d", f"{(days + 2) * DAY_HOURS}h", 1),
        ]
    return {
        "rule_files": ["rules.yaml"],
        # Every check is at a multiple of 6 hours: the rules need not run more often.
        "evaluation_interval": "6h",
        "group_eval_order": _eval_order(rules),
        "tests": [
            {
                "interval": "1h",
                "input_series": _diurnal() + _idle() + _periods(),
                "promql_expr_test": hand,
            }
        ],
    }


@pytest.mark.prometheus
def test_promtool_period_figures(tmp_path: Path) -> None:
    """Budget figures over days and weeks: diurnal traffic, an idle gap, every period."""
    rules = slo_rules(PERIOD_SLOS)
    _promtool_test(rules, _period_tests(rules), tmp_path)


def _rule(rules: dict[str, Any], **match: str) -> dict[str, Any]:
    return next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if all(r.get(k) == v or r.get("labels", {}).get(k) == v for k, v in match.items())
    )


def test_sloth_names_and_labels(rules: dict[str, Any]) -> None:
    slo = SLOS[0]
    groups = {g["name"]: g["rules"] for g in rules["groups"]}
    recordings = groups[f"sloth-slo-sli-recordings-{slo.id}"]
    assert [r["record"] for r in recordings] == [
        name
        for w in (*SLI_WINDOWS, "30d")
        for name in (
            f"slo:sli_total:increase{w}",
            f"slo:sli_error:increase{w}",
            f"slo:sli_error:ratio_rate{w}",
        )
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
    assert [(a["alert"], a["labels"]["severity"]) for a in alerts] == [
        (ALERT_NAME, "critical"),
        (ALERT_NAME, "warning"),
        (ABSENT_ALERT_NAME, "critical"),
    ]
    assert [a["labels"].get("sloth_severity") for a in alerts] == ["page", "ticket", None]
    for alert in alerts:
        assert "/d/buttress-slo/" in alert["annotations"]["dashboard"]
    for alert in alerts[:2]:
        assert "availability" in alert["annotations"]["description"]
        assert "0.1%" in alert["annotations"]["description"]  # the budget
    assert alerts[2]["for"] == "10m"


def test_sloth_slo_info_carries_percent_spec_and_version(rules: dict[str, Any]) -> None:
    info = _rule(rules, record="sloth_slo_info", sloth_id="fast-availability")["labels"]
    assert info["sloth_objective"] == "99.9"  # percent, as Sloth writes it
    assert info["sloth_spec"] == "prometheus/v1"
    assert info["sloth_version"] == f"buttress-{buttress.__version__}"
    assert info["sloth_mode"] == "buttress"
    checkout = _rule(rules, record="sloth_slo_info", sloth_id="routes-checkout")["labels"]
    assert checkout["sloth_objective"] == "99"


@pytest.mark.parametrize(
    ("days", "period", "factors"),
    [
        (30, "30d", ["14.4", "6", "3", "1"]),
        (28, "4w", ["13.44", "5.6", "2.8", "0.933333"]),
        (7, "1w", ["3.36", "1.4", "0.7", "0.233333"]),
        (14, "2w", ["6.72", "2.8", "1.4", "0.466667"]),
        (90, "90d", ["43.2", "18", "9", "3"]),
    ],
)
def test_period_names_and_burn_factors_follow_the_window(
    days: int, period: str, factors: list[str]
) -> None:
    slo = SLO("a", service="s", objective=0.9999, window=timedelta(days=days))
    rules = slo_rules([slo])
    records = [r.get("record") for g in rules["groups"] for r in g["rules"]]
    assert f"slo:sli_error:ratio_rate{period}" in records
    assert f"slo:sli_total:increase{period}" in records
    ratio = _rule(rules, record=f"slo:sli_error:ratio_rate{period}")
    assert ratio["labels"]["sloth_window"] == period
    assert _rule(rules, record="slo:time_period:days")["expr"] == f"vector({days})"
    page, ticket = (r for r in rules["groups"][2]["rules"] if r["alert"] == ALERT_NAME)
    found = re.findall(r"\(([0-9.]+) \* 0\.0001\)", page["expr"] + ticket["expr"])
    # Each factor appears twice: in the short and in the long window's condition.
    assert found[::2] == factors


def test_a_three_day_period_is_recorded_once() -> None:
    rules = slo_rules([SLO("a", service="s", objective=0.999, window=timedelta(days=3))])
    records = [r["record"] for r in rules["groups"][0]["rules"]]
    assert len(records) == len(set(records)) == 3 * len(SLI_WINDOWS)


def test_alert_name_runbook_and_dead_conditions() -> None:
    with pytest.warns(ButtressWarning, match="14.4x 1h/5m"):
        slo = SLO(
            "a",
            service="s",
            objective=0.9,  # 14.4 x 10% > 1: the 1h/5m page condition can never fire
            alert_name="CheckoutBudgetBurn",
            runbook_url="https://runbooks.example/a",
        )
    rules = slo_rules([slo])
    page = _rule(rules, alert="CheckoutBudgetBurn", sloth_severity="page")
    assert page["annotations"]["runbook_url"] == "https://runbooks.example/a"
    assert "(14.4 * 0.1)" not in page["expr"]
    assert "(6 * 0.1)" in page["expr"]
    absent = _rule(rules, alert=ABSENT_ALERT_NAME)
    assert absent["annotations"]["runbook_url"] == "https://runbooks.example/a"


def test_latency_successful_only_counts_failures_as_bad() -> None:
    plain = SLO("l", service="s", objective=0.99, threshold=0.25)
    strict = SLO("l", service="s", objective=0.99, threshold=0.25, successful_only=True)
    plain_rule = _rule(slo_rules([plain]), record="slo:sli_error:increase5m")
    strict_rule = _rule(slo_rules([strict]), record="slo:sli_error:increase5m")
    assert STATUS not in plain_rule["expr"]
    assert f'{STATUS}!~"5.."' in strict_rule["expr"]
    assert f'{ERROR_TYPE}=~"|client_disconnect"' in strict_rule["expr"]


def test_every_metric_name_comes_from_the_names_module(rules: dict[str, Any]) -> None:
    known = {v for v in vars(names).values() if isinstance(v, str)}
    known |= {f"{names.HTTP_SERVER_DURATION}_{s}" for s in ("count", "bucket", "sum")}
    prefixes = (names.SLO_SLI_ERROR_RATIO, names.SLO_SLI_ERROR_EVENTS, names.SLO_SLI_TOTAL_EVENTS)
    known |= {f"{p}{w}" for p in prefixes for w in (*SLI_WINDOWS, "4w", "30d")}
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
    assert [a["annotations"]["slo_description"] for a in alerts] == ["Checkout answers."] * 3


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
    assert len(written["groups"]) == 6  # three per SLO
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
