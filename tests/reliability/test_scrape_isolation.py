"""Scrapes do not slow the service: 20,000 series, three scrapers, /hello's p99 within 2x.

gunicorn serves a WSGI ``/hello`` behind the middleware with 20,000 series in its
registry (multiprocess mode), and exports the metrics from its master process on their
own port with prometheus_client's server (the setup docs/security.md recommends). Three
scrapers (their own processes, one scrape a second each, as Prometheus servers would)
scrape during every other phase; the phases alternate so that load from elsewhere on the
machine falls on both alike. Bounded: two seconds per phase, eight phases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from .._services import free_port, wait_for_port
from .conftest import Figures

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
SCRAPERS = 3
SCRAPE_INTERVAL = 1.0
PAIRS = 4  # idle and scraped phases, alternating


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _measure(client: httpx.Client, url: str, seconds: float) -> list[float]:
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        response = client.get(url)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    return latencies


def test_scrapes_leave_hello_p99_within_twice_idle(scale: float, figures: Figures) -> None:
    phase = 2.0 * scale
    port, metrics_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as multiproc, tempfile.TemporaryDirectory() as control:
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": multiproc,
            "METRICS_PORT": str(metrics_port),
            "PYTHONPATH": str(ROOT),
        }
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--config", "python:tests.reliability._scrape_gunicorn",
                "--log-level", "warning", "tests.reliability._scrape_app:app",
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(port, timeout=60)
            wait_for_port(metrics_port, timeout=60)
            hello = f"http://127.0.0.1:{port}/hello"
            metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            gate, stop = Path(control) / "scrape", Path(control) / "stop"
            command = [
                sys.executable, "-m", "tests.reliability._scraper", metrics,
                str(SCRAPE_INTERVAL), str(gate), str(stop),
            ]  # fmt: skip
            scrapers = [
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
                for _ in range(SCRAPERS)
            ]
            idle: list[float] = []
            scraped: list[float] = []
            try:
                for scraper in scrapers:  # every scraper started before anything is measured
                    assert scraper.stdout is not None
                    assert scraper.stdout.readline().strip() == "ready"
                with httpx.Client(timeout=10.0) as client:
                    _measure(client, hello, 1.0)  # warm up the worker and the connection
                    for _ in range(PAIRS):
                        idle += _measure(client, hello, phase)
                        # Each scraper looks at the gate once per interval: after one
                        # interval all of them scrape, and one after closing it none does.
                        gate.touch()
                        _measure(client, hello, SCRAPE_INTERVAL)
                        scraped += _measure(client, hello, phase)
                        gate.unlink()
                        _measure(client, hello, SCRAPE_INTERVAL)
            finally:
                stop.touch()
                reports = [
                    json.loads(s.communicate(timeout=60)[0].splitlines()[-1]) for s in scrapers
                ]
        finally:
            server.terminate()
            server.wait(timeout=20)
    scrapes = sum(r["scrapes"] for r in reports)
    sizes = [r["size"] for r in reports]
    idle_p99, scraped_p99 = _p99(idle), _p99(scraped)
    figures(
        "scrape isolation (gunicorn, metrics from the master on their own port)",
        {
            "series": 20_000,
            "scrapers": SCRAPERS,
            "scrapes": scrapes,
            "body_bytes": min(sizes),
            "idle_requests": len(idle),
            "scraped_requests": len(scraped),
            "idle_p99_ms": idle_p99 * 1000,
            "scraped_p99_ms": scraped_p99 * 1000,
            "ratio": scraped_p99 / idle_p99,
        },
    )
    # Every scraper scraped all 20,000 series. Renders run at a lower priority, so on a
    # busy machine a scrape takes longer: fewer than one a second each is expected.
    assert all(r["scrapes"] >= 1 for r in reports)
    assert min(sizes) > 800_000
    assert scraped_p99 <= 2 * idle_p99
