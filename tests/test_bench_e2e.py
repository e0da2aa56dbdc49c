"""The end-to-end benchmark runs under real servers and ends with its RESULT line.

A smoke run only (one short round, the Python load generator): no timing is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_e2e_benchmark_runs_and_reports_its_result_line() -> None:
    env = {**os.environ, "E2E_LOADGEN": "python"}
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "e2e", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert "python fallback" in lines[0]
    result = lines[-1].split()
    assert result[:2] == ["RESULT", "e2e"]
    values = dict(item.split("=", 1) for item in result[2:])
    assert values["loadgen"] == "python"
    float(values["asgi_loss_sampled"])
    float(values["wsgi_loss_sampled"])
