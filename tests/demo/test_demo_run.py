"""``buttress demo`` end to end: real servers on 127.0.0.1, real traffic, every artifact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

DASHBOARDS = {"buttress-resilience.json", "buttress-service.json", "buttress-slo.json"}


def _demo(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "buttress", "demo", "--plain", "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_demo_runs_to_the_end_and_leaves_every_artifact(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    process = _demo(out, "--duration", "8", "--rate", "30")
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert f"artifacts in {out}" in output
    assert "breaker" in output
    assert "burn" in output

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

    spans = json.loads((out / "spans.json").read_text())
    server = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert server
    assert {s["name"] for s in server} == {"GET /quote/{sku}"}
    lines = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    access = [line for line in lines if line.get("logger") == "buttress.access"]
    assert access
    assert all(line["request_id"] and line["trace_id"] for line in access)
    trace_ids = {s["context"]["trace_id"].removeprefix("0x") for s in server}
    assert {line["trace_id"] for line in access} <= trace_ids

    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 100
    assert not summary["interrupted"]
    assert summary["upstream_calls"] > 0
    # The outage trips the breaker and the fallback answers while it is open.
    assert any(t["to"] == "open" for t in summary["breaker_transitions"]), summary
    assert summary["fallbacks"] > 0
    assert "breaker transitions" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_still_writes_the_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    process = _demo(out, "--duration", "60")
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    seen = ""
    while "rps" not in seen and time.monotonic() < deadline:  # running and serving traffic
        seen += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, seen + rest
    assert "stopped early by Ctrl-C" in rest
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert (out / "spans.json").exists()
    assert (out / "rules" / "slo-rules.yaml").exists()
