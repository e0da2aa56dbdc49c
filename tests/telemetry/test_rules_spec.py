"""The SLO rules as a specification: promtool evaluates every recording rule, with exact values.

Small scenarios with counters growing at constant rates from zero, read at minute 120,
so every ``increase`` is exact: the SLI counts of each window, the ratios, the burn
rates and the budget left. They go through the paths the larger scenarios of
test_rules.py do not: one route (an exact matcher), routes holding regex characters, a
whole-number latency threshold written ``1`` and ``1.0``, and label values that need
escaping.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from buttress import ConfigurationError
from buttress.slo import SLO, slo_rules
from buttress.telemetry import _names as names
from buttress.telemetry._rules import (
    SLI_WINDOWS,
    escape_regex,
    label_matchers,
    render_rules,
)

from .._services import require_binary

COUNT = names.HTTP_SERVER_DURATION + "_count"
BUCKET = names.HTTP_SERVER_DURATION + "_bucket"
ROUTE, STATUS, ERROR_TYPE, LE = (
    names.LABEL_ROUTE,
    names.LABEL_STATUS,
    names.LABEL_ERROR_TYPE,
    names.LABEL_LE,
)
MINUTES = 180
AT = "120m"
WEIRD = 'we"ird\\ns'  # a label value with a quote and a backslash

SHOP = SLO(
    "availability",
    service="shop",
    objective=0.99,
    routes=["/cart/{id}"],
    window=timedelta(days=7),
    labels={"team": "web"},
)
API = SLO(
    "latency",
    service="api",
    objective=0.99,
    threshold=1,
    routes=["/a.b", "/c+"],
    selector={"job": "api", "ns": WEIRD},
)
IDLE = SLO("availability", service="idle", objective=0.999)
FAST_ONLY = SLO("latency", service="strict", objective=0.99, threshold=0.5, successful_only=True)


def _labels(**labels: str) -> str:
    return label_matchers((k, "=", v) for k, v in labels.items())


def _counter(metric: str, per_minute: int, **labels: str) -> dict[str, str]:
    return {"series": metric + _labels(**labels), "values": f"0+{per_minute}x{MINUTES}"}


def _input() -> list[dict[str, str]]:
    cart = {"job": "shop", ROUTE: "/cart/{id}"}
    api = {"job": "api", "ns": WEIRD}
    strict = {"job": "strict", ROUTE: "/"}
    return [
        # shop, per minute on its route: 97 good, 1 server error, 1 broken after a 200, and
        # 1 client disconnect (not the service's failure): 2 bad of 100.
        _counter(COUNT, 97, **cart, **{STATUS: "200"}),
        _counter(COUNT, 1, **cart, **{STATUS: "503"}),
        _counter(COUNT, 1, **cart, **{STATUS: "200", ERROR_TYPE: "response_aborted"}),
        _counter(COUNT, 1, **cart, **{STATUS: "200", ERROR_TYPE: names.ERROR_CLIENT_DISCONNECT}),
        # Other routes and other jobs are not the SLO's.
        _counter(COUNT, 50, job="shop", **{ROUTE: "/cart/{id}/x", STATUS: "500"}),
        _counter(COUNT, 50, job="shop-canary", **{ROUTE: "/cart/{id}", STATUS: "500"}),
        # api, per minute: /a.b 10 requests, 9 within 1 s (le="1", as OpenTelemetry writes
        # it); /c+ 10 requests, 8 within 1 s (le="1.0", as prometheus_client does): 3 slow
        # of 20. /aXb would match an unescaped "/a.b", and "/cc" an unescaped "/c+".
        _counter(COUNT, 10, **api, **{ROUTE: "/a.b", STATUS: "200"}),
        _counter(BUCKET, 9, **api, **{ROUTE: "/a.b", STATUS: "200", LE: "1"}),
        _counter(BUCKET, 9, **api, **{ROUTE: "/a.b", STATUS: "200", LE: "10"}),
        _counter(COUNT, 10, **api, **{ROUTE: "/c+", STATUS: "200"}),
        _counter(BUCKET, 8, **api, **{ROUTE: "/c+", STATUS: "200", LE: "1.0"}),
        _counter(BUCKET, 9, **api, **{ROUTE: "/c+", STATUS: "200", LE: "0.5"}),
        _counter(COUNT, 10, **api, **{ROUTE: "/aXb", STATUS: "200"}),
        _counter(BUCKET, 0, **api, **{ROUTE: "/aXb", STATUS: "200", LE: "1"}),
        _counter(COUNT, 10, **api, **{ROUTE: "/cc", STATUS: "200"}),
        _counter(COUNT, 10, job="api", ns="other", **{ROUTE: "/a.b", STATUS: "200"}),
        # strict (fast and successful): per minute 10 fast 200s, 2 fast 500s, 1 fast 200
        # broken after it started, 1 fast client disconnect, 1 slow 200: 4 bad of 15.
        _counter(COUNT, 10, **strict, **{STATUS: "200"}),
        _counter(BUCKET, 10, **strict, **{STATUS: "200", LE: "0.5"}),
        _counter(COUNT, 2, **strict, **{STATUS: "500"}),
        _counter(BUCKET, 2, **strict, **{STATUS: "500", LE: "0.5"}),
        _counter(COUNT, 1, **strict, **{STATUS: "200", ERROR_TYPE: "response_aborted"}),
        _counter(BUCKET, 1, **strict, **{STATUS: "200", ERROR_TYPE: "response_aborted", LE: "0.5"}),
        _counter(COUNT, 1, **strict, **{STATUS: "200", ERROR_TYPE: names.ERROR_CLIENT_DISCONNECT}),
        _counter(
            BUCKET,
            1,
            **strict,
            **{STATUS: "200", ERROR_TYPE: names.ERROR_CLIENT_DISCONNECT, LE: "0.5"},
        ),
        _counter(COUNT, 1, **strict, **{STATUS: "201"}),
        _counter(BUCKET, 0, **strict, **{STATUS: "201", LE: "0.5"}),
    ]


def _ids(slo: SLO, window: str | None = None) -> dict[str, str]:
    labels = {
        **slo.labels,
        names.LABEL_SLO_ID: slo.id,
        names.LABEL_SLO_SERVICE: slo.service,
        names.LABEL_SLO_NAME: slo.name,
    }
    if window is not None:
        labels[names.LABEL_SLO_WINDOW] = window
    return labels


def _sample(record: str, slo: SLO, value: float, window: str | None = None) -> dict[str, Any]:
    selector = _labels(**{names.LABEL_SLO_ID: slo.id})
    return {
        # Rounded to 5 decimals as integers over 10^5: the nearest float to the decimal.
        "expr": f"round({record}{selector} * 100000) / 100000",
        "eval_time": AT,
        "exp_samples": [{"labels": _labels(**_ids(slo, window)), "value": round(value, 5)}],
    }


def _window_samples(slo: SLO, per_minute: int, bad_per_minute: int) -> list[dict[str, Any]]:
    samples = []
    for window in (*SLI_WINDOWS, slo.period):
        # A window longer than the 120 minutes of traffic holds all of it.
        minutes = min(_minutes(window), 120)
        total, bad = per_minute * minutes, bad_per_minute * minutes
        samples += [
            _sample(names.SLO_SLI_TOTAL_EVENTS + window, slo, total, window),
            _sample(names.SLO_SLI_ERROR_EVENTS + window, slo, bad, window),
            _sample(names.SLO_SLI_ERROR_RATIO + window, slo, bad / total, window),
        ]
    return samples


def _minutes(window: str) -> int:
    return int(window[:-1]) * {"m": 1, "h": 60, "d": 1440, "w": 10080}[window[-1]]


def _meta_samples(slo: SLO, ratio: float) -> list[dict[str, Any]]:
    burn = round(ratio / slo.error_budget, 5)
    return [
        _sample(names.SLO_OBJECTIVE, slo, slo.objective),
        _sample(names.SLO_ERROR_BUDGET, slo, slo.error_budget),
        _sample(names.SLO_TIME_PERIOD_DAYS, slo, slo.window_days),
        _sample(names.SLO_CURRENT_BURN_RATE, slo, burn),
        _sample(names.SLO_PERIOD_BURN_RATE, slo, burn),
        _sample(names.SLO_PERIOD_BUDGET_REMAINING, slo, round(1 - burn, 5)),
    ]


def _promtool(rules: dict[str, Any], tests: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (tmp_path / "rules.yaml").write_text(render_rules(rules))
    document = {
        "rule_files": ["rules.yaml"],
        # The values at minute 120 read the raw counters, or rules of the same evaluation:
        # the rules need not run more often.
        "evaluation_interval": "30m",
        # The SLI ratios first: the burn rates of the same evaluation read them.
        "group_eval_order": [g["name"] for g in rules["groups"]],
        "tests": [{"interval": "1m", "input_series": _input(), "promql_expr_test": tests}],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _alert_samples(rules: dict[str, Any], slo: SLO, page: float, ticket: float) -> list[Any]:
    """Each alert's own expression at minute 120: the burn rate it fires with, or nothing."""
    alerts = next(g for g in rules["groups"] if g["name"] == f"sloth-slo-alerts-{slo.id}")
    burns = [r["expr"] for r in alerts["rules"] if r["alert"] == slo.alert_name]
    (absent,) = (r["expr"] for r in alerts["rules"] if r["alert"] != slo.alert_name)
    samples = [
        {
            "expr": f"round(({expr}) * 100000) / 100000",
            "eval_time": AT,
            "exp_samples": []
            if burn == 0
            else [{"labels": _labels(**_ids(slo)), "value": round(burn, 5)}],
        }
        for expr, burn in zip(burns, (page, ticket), strict=True)
    ]
    samples.append({"expr": absent, "eval_time": AT, "exp_samples": []})
    return samples


@pytest.mark.prometheus
def test_promtool_evaluates_every_rule_of_each_slo(tmp_path: Path) -> None:
    """One promtool run for all four SLOs: each rule's value at minute 120."""
    slos = [SHOP, API, FAST_ONLY, IDLE]
    rules = slo_rules(slos, buckets=(0.5, 1.0, 10.0))
    idle = [
        _sample(names.SLO_SLI_TOTAL_EVENTS + "1h", IDLE, 0, "1h"),
        _sample(names.SLO_SLI_ERROR_EVENTS + "1h", IDLE, 0, "1h"),
        _sample(names.SLO_SLI_ERROR_RATIO + "1h", IDLE, 0, "1h"),
        _sample(names.SLO_SLI_ERROR_RATIO + IDLE.period, IDLE, 0, IDLE.period),
        *_meta_samples(IDLE, 0.0),
        _alert_samples(rules, IDLE, 0, 0)[0],
        _alert_samples(rules, IDLE, 0, 0)[1],
        {
            # No series of the idle job at all: the absent alert's expression is 1.
            "expr": _alert_samples(rules, IDLE, 0, 0)[2]["expr"],
            "eval_time": AT,
            "exp_samples": [{"labels": _labels(job="idle"), "value": 1}],
        },
    ]
    tests = [
        # shop: 2 of 100 bad on a 1-week period (budget 0.01; factors 3.36, 1.4, 0.7 and
        # 0.23): the 1h/5m page needs 3.36%, the 6h/30m one 1.4%: it pages at a burn of 2,
        # and the tickets fire too.
        *_window_samples(SHOP, 100, 2),
        *_meta_samples(SHOP, 0.02),
        *_alert_samples(rules, SHOP, 2, 2),
        # api: 3 of 20 slow over 30 days: every condition holds, burning 15 times over.
        *_window_samples(API, 20, 3),
        *_meta_samples(API, 0.15),
        *_alert_samples(rules, API, 15, 15),
        # strict: 4 of 15 bad.
        *_window_samples(FAST_ONLY, 15, 4),
        *_meta_samples(FAST_ONLY, 4 / 15),
        *_alert_samples(rules, FAST_ONLY, 4 / 15 / 0.01, 4 / 15 / 0.01),
        *idle,
    ]
    _promtool(rules, tests, tmp_path)


def test_label_values_are_quoted_with_escapes() -> None:
    assert label_matchers([]) == ""
    assert label_matchers([("a", "=", "x"), ("b", "!~", "y|z")]) == '{a="x",b!~"y|z"}'
    assert label_matchers([("a", "=", 'q"b\\n\nl')]) == '{a="q\\"b\\\\n\\nl"}'
    assert escape_regex("/a.b+{id}(x)|[y]^$*?\\") == (
        "/a\\.b\\+\\{id\\}\\(x\\)\\|\\[y\\]\\^\\$\\*\\?\\\\"
    )


def _expr(rules: dict[str, Any], record: str) -> str:
    expr: str = next(
        r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("record") == record
    )
    return expr


def test_one_route_is_an_exact_matcher_and_several_an_escaped_regex() -> None:
    one = _expr(slo_rules([SHOP]), names.SLO_SLI_TOTAL_EVENTS + "1h")
    assert f'{ROUTE}="/cart/{{id}}"' in one
    several = _expr(slo_rules([API], buckets=(1.0,)), names.SLO_SLI_TOTAL_EVENTS + "1h")
    assert f'{ROUTE}=~"/a\\\\.b|/c\\\\+"' in several
    assert 'ns="we\\"ird\\\\ns"' in several


def test_a_whole_number_threshold_matches_every_way_of_writing_it() -> None:
    errors = _expr(slo_rules([API], buckets=(1.0,)), names.SLO_SLI_ERROR_EVENTS + "1h")
    assert f'{LE}=~"1|1\\\\.0"' in errors
    half = _expr(slo_rules([FAST_ONLY], buckets=(0.5,)), names.SLO_SLI_ERROR_EVENTS + "1h")
    assert f'{LE}=~"0\\\\.5"' in half


def test_buckets_must_hold_each_threshold_and_the_message_lists_them() -> None:
    with pytest.raises(ConfigurationError) as info:
        slo_rules([API], buckets=(0.5, 2))
    assert str(info.value) == (
        "SLO 'latency', field 'threshold': 1.0 s is not a histogram bucket boundary "
        "(0.5, 2), so the SLI could not be read exactly; give the middleware "
        "buckets_with_thresholds(slos) and pass the same buckets here"
    )
    assert slo_rules([API], buckets=[1])["groups"]  # an int bound is the same boundary


def test_each_slo_has_its_three_groups_in_order() -> None:
    rules = slo_rules([SHOP, IDLE])
    assert [g["name"] for g in rules["groups"]] == [
        "sloth-slo-sli-recordings-shop-availability",
        "sloth-slo-meta-recordings-shop-availability",
        "sloth-slo-alerts-shop-availability",
        "sloth-slo-sli-recordings-idle-availability",
        "sloth-slo-meta-recordings-idle-availability",
        "sloth-slo-alerts-idle-availability",
    ]
    with pytest.raises(ConfigurationError, match=r"^SLO id 'shop-availability' declared twice$"):
        slo_rules([SHOP, IDLE, SHOP])
    with pytest.raises(ConfigurationError, match=r"^no SLOs: declare at least one$"):
        slo_rules([])


def test_rendered_rules_read_back_the_same_with_expressions_as_blocks() -> None:
    rules = slo_rules([SHOP, API], buckets=(1.0,))
    text = render_rules(rules)
    assert text.startswith(
        "# Generated by buttress from SLO definitions: regenerate rather than edit.\ngroups:\n"
    )
    assert yaml.safe_load(text) == rules
    # A multi-line expression is a literal block, as written; a one-line value is plain.
    assert "  - record: slo:sli_total:increase5m\n    expr: |\n      (sum(increase(" in text
    assert "    expr: vector(1)\n" in text
    assert max(len(line) for line in text.splitlines() if "expr" not in line) <= 200


def _alert_rules(slo: SLO, **options: Any) -> list[dict[str, Any]]:
    rules = slo_rules([slo], buckets=(0.5, 1.0), **options)
    alerts: list[dict[str, Any]] = rules["groups"][2]["rules"]
    return alerts


def test_alerts_say_what_burns_in_their_labels_and_annotations() -> None:
    page, ticket, absent = _alert_rules(FAST_ONLY)
    ids = {"sloth_id": "strict-latency", "sloth_service": "strict", "sloth_slo": "latency"}
    assert page["labels"] == {
        **ids,
        "severity": "critical",
        "sloth_severity": "page",
        "category": "latency",
    }
    assert ticket["labels"]["severity"] == "warning"
    assert ticket["labels"]["sloth_severity"] == "ticket"
    dashboard = "/d/buttress-slo/buttress-slos?var-service=strict&var-slo=latency"
    what = (
        "SLO latency of strict (latency: 99% of requests answered in under 0.5s and without "
        "a 5xx over 30 days; error budget 1%) burns its budget at {{ $value | humanize }} "
        "times the allowed error ratio: over "
    )
    assert page["annotations"] == {
        "summary": "SLO latency of strict burns its error budget too fast (page)",
        "description": what + "14.4x in 1h and 5m, or 6x in 6h and 30m, with at least 3 bad "
        "requests in the long window.",
        "dashboard": dashboard,
    }
    assert ticket["annotations"]["description"] == (
        what + "3x in 1d and 2h, or 1x in 3d and 6h, with at least 3 bad requests in the "
        "long window."
    )
    assert absent["labels"] == {**ids, "severity": "critical", "category": "latency"}
    assert absent["annotations"] == {
        "summary": "SLO latency of strict cannot be measured: its request metric is absent",
        "description": 'No series of http_server_request_duration_seconds_count{job="strict"} '
        "for 10m: the service is not scraped, exports no such metric, or (for an SLO over "
        "routes) exposes no matching http_route label; its SLO and burn-rate alerts cannot "
        "see anything.",
        "dashboard": dashboard,
    }


def test_a_plain_latency_slo_is_described_without_the_5xx_clause() -> None:
    slo = SLO("latency", service="api", objective=0.995, threshold=1)
    page = _alert_rules(slo)[0]
    assert page["annotations"]["description"].startswith(
        "SLO latency of api (latency: 99.5% of requests answered in under 1s over 30 days; "
        "error budget 0.5%) burns"
    )


def test_the_dashboard_link_is_relative_without_a_grafana_url() -> None:
    link = "/d/buttress-slo/buttress-slos?var-service=idle&var-slo=availability"
    assert _alert_rules(IDLE)[0]["annotations"]["dashboard"] == link
    (page, _, _) = _alert_rules(IDLE, grafana_url="https://grafana.example/X/")
    assert page["annotations"]["dashboard"] == "https://grafana.example/X" + link
