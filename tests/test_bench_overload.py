"""The overload benchmark runs against real uvicorn servers and ends with its RESULT line.

A smoke run only (short phases): no figure is asserted, only that each one is reported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_overload_benchmark_runs_and_reports_its_result_line() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "overload", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("## Overload")
    result = lines[-1].split()
    assert result[:2] == ["RESULT", "overload"]
    values = dict(item.split("=", 1) for item in result[2:])
    assert set(values) == {
        "goodput_4x_on",
        "goodput_4x_off",
        "p99_ratio_4x_on",
        "server_p99_ratio_4x_on",
        "shed_p50_ms",
        "shed_under_1ms_server",
        "off_p99_4x_ms",
        "off_timeout_share_4x",
    }
    for value in values.values():
        float(value)  # a number (nan when a phase had nothing to measure)
    # What callers of the unprotected service saw is always a figure: its timeouts count.
    assert values["off_p99_4x_ms"] != "nan"
    assert float(values["off_p99_4x_ms"]) > 0
