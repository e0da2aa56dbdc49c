"""Multiprocess mode: two gunicorn workers, one scrape sees the sum over both."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._services import free_port, stop_process, wait_for_port

APP = """
import os

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import buttress
from buttress.events import BulkheadUsage, RetryScheduled, default_registry

telemetry = buttress.configure(service="mp", log_format="json")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        body = generate_latest(telemetry.exposition_registry())
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]
    default_registry.emit(RetryScheduled("upstream", 1, 0.0, "OSError"))
    default_registry.emit(BulkheadUsage("upstream", in_use=0, waiting=0, capacity=10))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""

GUNICORN_CONF = """
from buttress.gunicorn import child_exit, on_starting, post_fork  # noqa: F401
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "mp_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(GUNICORN_CONF))
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    argv += ["--chdir", str(tmp_path), "--config", str(tmp_path / "gunicorn_conf.py"), "mp_app:app"]
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        try:
            wait_for_port(port, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process, timeout=15)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.mark.slow
def test_a_scrape_sums_every_worker(server: str) -> None:
    pids: set[str] = set()
    sent = 0
    # Requests go four at a time, so a busy sync worker leaves the next to the other one;
    # bounded in time, since the second worker may boot seconds after the first on a
    # loaded machine.
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(4) as pool:
        while (len(pids) < 2 or sent < 20) and time.monotonic() < deadline:
            for pid in pool.map(lambda _: _get(server + "/work"), range(8)):
                pids.add(pid)
                sent += 1
    assert len(pids) == 2

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(_get(server + "/metrics"))
        for s in family.samples
    }
    attempts = (
        "buttress_retry_attempts_total",
        (("error_type", "OSError"), ("policy", "upstream")),
    )
    assert samples[attempts] == sent
    # livesum: each live worker's bulkhead adds its capacity.
    assert samples[("buttress_bulkhead_capacity", (("policy", "upstream"),))] == 20
