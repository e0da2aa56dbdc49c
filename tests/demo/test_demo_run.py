"""``buttress demo`` end to end: real servers on 127.0.0.1, real traffic, every artifact."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import DemoRun, start_demo

DASHBOARDS = {
    "buttress-jobs.json",
    "buttress-resilience.json",
    "buttress-service.json",
    "buttress-slo.json",
}


@pytest.mark.slow
def test_demo_runs_to_the_end_and_leaves_every_artifact(demo_run: DemoRun) -> None:
    out, output = demo_run.out, demo_run.output
    assert demo_run.returncode == 0, output
    assert f"artifacts in {out}" in output
    assert f"incident report: {out / 'report.html'}" in output
    assert "breaker" in output
    assert "burn" in output
    assert "trends over the run" in output

    assert {p.name for p in (out / "dashboards").iterdir()} == DASHBOARDS
    rules = yaml.safe_load((out / "rules" / "slo-rules.yaml").read_text())
    assert any(
        "slo:sli_error:ratio_rate5m" in r.get("record", "")
        for g in rules["groups"]
        for r in g["rules"]
    )
    metrics = (out / "metrics.txt").read_text()
    assert (
        'http_server_request_duration_seconds_count{error_type="",http_request_method="GET",http_response_status_code="200",http_route="/quote/{sku}"}'
        in metrics
    )
    assert "buttress_circuit_breaker_transitions_total" in metrics
    # Pricing records into a registry of its own: checkout's /metrics is checkout's alone.
    assert "/price/{sku}" not in metrics

    lines = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    access = [line for line in lines if line.get("logger") == "buttress.access"]
    assert access
    assert all(line["request_id"] and line["trace_id"] for line in access)
    server = [s for s in _spans(out) if s["kind"] == "SpanKind.SERVER"]
    trace_ids = {s["context"]["trace_id"].removeprefix("0x") for s in server}
    assert {line["trace_id"] for line in access} <= trace_ids

    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 100
    assert not summary["interrupted"]
    assert summary["upstream_calls"] > 0
    # The outage trips the breaker and the fallback answers while it is open.
    assert any(t["to"] == "open" for t in summary["breaker_transitions"]), summary
    assert summary["fallbacks"] > 0
    # Calls the breaker refused are named for what happened to them.
    assert summary["calls_by_outcome"]["refused_by_open_breaker"] > 0
    assert "not_retryable" not in json.dumps(summary)
    markdown = (out / "summary.md").read_text()
    assert "breaker transitions" in markdown
    assert "refused by the open breaker" in markdown
    assert (out / "report.html").stat().st_size > 10_000


def _spans(out: Path) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = json.loads((out / "spans.json").read_text())
    return spans


def _service(span: dict[str, Any]) -> str:
    name: str = span["resource"]["attributes"]["service.name"]
    return name


@pytest.mark.slow
def test_each_quote_is_one_trace_across_both_services(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.output
    spans = _spans(demo_run.out)
    by_id = {s["context"]["span_id"]: s for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["parent_id"] is not None:
            children.setdefault(span["parent_id"], []).append(span)

    def chain(root: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each attempt's client span under ``root``, with pricing's server spans under it."""
        return [
            (client, children.get(client["context"]["span_id"], []))
            for client in children.get(root["context"]["span_id"], [])
            if client["kind"] == "SpanKind.CLIENT"
        ]

    roots = [
        s
        for s in spans
        if s["kind"] == "SpanKind.SERVER" and _service(s) == "checkout" and s["parent_id"] is None
    ]
    assert {s["name"] for s in roots} == {"GET /quote/{sku}"}
    complete = retried = 0
    for root in roots:
        attempts = chain(root)
        if not attempts or not all(upstream for _, upstream in attempts):
            continue  # answered by the fallback, or an attempt refused before it was sent
        trace_id = root["context"]["trace_id"]
        for client, upstream in attempts:
            assert _service(client) == "checkout"
            assert client["context"]["trace_id"] == trace_id
            assert [_service(s) for s in upstream] == ["pricing"]
            assert upstream[0]["kind"] == "SpanKind.SERVER"
            assert upstream[0]["name"] == "GET /price/{sku}"
            assert upstream[0]["context"]["trace_id"] == trace_id
            assert by_id[upstream[0]["parent_id"]] is client
        complete += 1
        retried += len(attempts) > 1
    # Quotes outside the outage reach pricing; the outage makes some retry (a client span
    # per attempt). Bounds are loose: a loaded machine makes calls slow, and the breaker
    # then opens more often, sparing pricing more quotes.
    assert complete >= 10, (complete, len(roots))
    assert retried > 0


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_still_writes_the_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    process = start_demo(out, "--duration", "60")
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    seen = ""
    while "req/s" not in seen and time.monotonic() < deadline:  # running and serving traffic
        seen += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, seen + rest
    assert "stopped early by Ctrl-C" in rest
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert (out / "spans.json").exists()
    assert (out / "rules" / "slo-rules.yaml").exists()
    assert "stopped early by Ctrl-C" in (out / "report.html").read_text()
