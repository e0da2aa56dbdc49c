"""Scrapes do not slow the service: 20,000 series, three scrapers, /hello's p99 within 2x.

gunicorn serves a WSGI ``/hello`` behind the middleware with 20,000 series in its
registry (multiprocess mode), and exports the metrics from its master process on their
own port with prometheus_client's server (the setup docs/security.md recommends). Three
scrapers (their own processes, one scrape a second each, as Prometheus servers would)
run during every other phase; the phases alternate so that load from elsewhere on the
machine falls on both alike. Bounded: a few seconds per phase, six phases.
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
WARM = 1.5  # a scraper's interpreter starting up is not a scrape: not measured


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
    phase = 2.5 * scale
    port, metrics_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as multiproc:
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
            idle: list[float] = []
            scraped: list[float] = []
            scrapes = 0
            sizes = []
            with httpx.Client(timeout=10.0) as client:
                _measure(client, hello, 1.0)  # warm up the worker and the connection
                for _ in range(3):
                    idle += _measure(client, hello, phase)
                    command = [
                        sys.executable, "-m", "tests.reliability._scraper", metrics,
                        str(SCRAPE_INTERVAL), str(WARM + phase),
                    ]  # fmt: skip
                    scrapers = [
                        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
                        for _ in range(SCRAPERS)
                    ]
                    time.sleep(WARM)
                    scraped += _measure(client, hello, phase)
                    for scraper in scrapers:
                        out, _ = scraper.communicate(timeout=60)
                        report = json.loads(out)
                        scrapes += report["scrapes"]
                        sizes.append(report["size"])
        finally:
            server.terminate()
            server.wait(timeout=20)
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
    assert scrapes >= SCRAPERS * 3  # the scrapers did scrape, every phase
    assert min(sizes) > 800_000  # ... all 20,000 series
    assert scraped_p99 <= 2 * idle_p99
