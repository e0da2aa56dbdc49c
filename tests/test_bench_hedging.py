"""The hedging benchmark runs against its real upstream and ends with its RESULT line.

A smoke run only (two short rounds): no timing is asserted, only that every figure the
report promises is there and that hedging sent some extra calls, but not unboundedly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_hedging_benchmark_runs_and_reports_its_result_line() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "hedging", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert "| no hedge |" in done.stdout
    result = lines[-1].split()
    assert result[:2] == ["RESULT", "hedging"]
    values = dict(item.split("=", 1) for item in result[2:])
    assert int(values["calls"]) == 200
    for key in ("p99_ms", "p99_hedged_ms", "p99_ratio", "p99_p90_ms", "p99_ratio_p90"):
        assert float(values[key]) > 0
    # Extra calls are bounded by the hedge's budget (10 % of calls plus a small floor).
    for key in ("extra_calls", "extra_calls_p90"):
        assert 0 <= float(values[key]) <= 0.5
