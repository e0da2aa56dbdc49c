"""One real demo run, shared by the tests that read its artifacts."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    out: Path
    output: str
    returncode: int


def start_demo(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "buttress", "demo", "--plain", "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``buttress demo`` for ten seconds at 30 requests per second, run to its end."""
    out = tmp_path_factory.mktemp("demo-run") / "demo"
    process = start_demo(out, "--duration", "10", "--rate", "30")
    output, _ = process.communicate(timeout=90)
    return DemoRun(out, output, process.returncode)
