"""Real Celery workers for the tests: started as child processes, always stopped.

A worker runs the solo pool (one process: killing it kills the task it runs), logs JSON
to a file and records metrics in its own ``PROMETHEUS_MULTIPROC_DIR``, which the test
reads with prometheus_client's multiprocess collector.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests._services import stop_process

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy (bounded), and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not after {timeout}s: {what or condition}")
        time.sleep(0.05)


class Worker:
    """``celery worker`` on the broker ``url``, with extra environment ``env``."""

    def __init__(self, url: str, directory: Path, name: str, **env: str) -> None:
        self.url = url
        self.log = directory / f"{name}.log"
        self.metrics_dir = directory / f"{name}-metrics"
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        environ = {
            **os.environ,
            "JOBS_BROKER": url,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "PYTHONPATH": str(ROOT),
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            **env,
        }
        argv = [
            sys.executable, "-m", "celery", "-A", "tests.jobs.celery_app", "worker",
            "--pool=solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-n", f"{name}@127.0.0.1", "--loglevel=INFO",
        ]  # fmt: skip
        self._file = self.log.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=environ, stdout=self._file, stderr=subprocess.STDOUT
        )
        client = redis.Redis.from_url(url)
        try:
            wait_until(
                lambda: (
                    client.exists(f"jobs:ready:{self.process.pid}")
                    or self.process.poll() is not None
                ),
                what="the worker to be ready",
            )
        finally:
            client.close()
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited: {self.log.read_text()[-2000:]}")

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON lines the worker logged so far (those called ``event``)."""
        found = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if event is None or line.get("event") == event:
                    found.append(line)
        return found

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the worker's samples ``name`` whose labels include ``labels``."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        return sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def kill(self) -> None:
        """SIGKILL: the task in hand is neither finished nor acknowledged."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process(self.process, timeout=10)
        self._file.close()
