"""The shared-state benchmark runs against a real redis-server and ends with its RESULT line.

A smoke run only (short phases): no timing is asserted, but the run must see no error
reach a caller, in either mode.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._services import require_binary

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
@pytest.mark.slow
def test_the_shared_state_benchmark_runs_and_reports_its_result_line() -> None:
    require_binary("redis-server")
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_shared_state.py", "--quick", "--duration", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = done.stdout.strip().splitlines()[-1].split()
    assert result[:2] == ["RESULT", "shared_state"]
    values = dict(item.split("=", 1) for item in result[2:])
    assert values["errors"] == "0"
    float(values["batched_cmds_per_proc"])
    float(values["batched_admitted_ratio"])
