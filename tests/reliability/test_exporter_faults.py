"""An OTLP endpoint that is down or slow never slows requests: spans, log records and
metric points are exported in the background (spans and logs from bounded queues, whose
drops are counted; metrics are cumulative, so a failed export is made good by the next).

The application runs under uvicorn in its own process with ``buttress.configure()``
exporting over OTLP/HTTP to 127.0.0.1; the test drives it with concurrent requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .._services import free_port, wait_for_port
from .conftest import Figures

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
QUEUE = 256
BATCH = 32  # small, so a stuck exporter drains slowly and the queue fills even on a slow run
EXPORT_TIMEOUT = 1.0  # seconds the exporter waits for the endpoint
SLOW = 2.0  # seconds the slow endpoint takes to answer: past the export timeout
CONCURRENCY = 8
# An export in the request path would make most requests wait a whole export timeout
# (1 s) or more: the median stays far below that. The 99th percentile is bounded below
# the slow endpoint's answer time only: on a shared CI machine (load averages of 10 on 2
# cores) one request in a hundred may stall for other reasons, endpoint or not.
P50_LATENCY = 0.25
P99_LATENCY = 1.5


class Receiver:
    """An OTLP/HTTP endpoint on 127.0.0.1 that answers after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.spans = 0
        self.exports = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != "/v1/traces":  # metrics and logs: taken, not decoded
                    time.sleep(delay)
                    try:
                        self.send_response(200)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    except OSError:
                        pass
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                time.sleep(delay)
                receiver.exports += 1
                receiver.spans += sum(
                    len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
                )
                reply = ExportTraceServiceResponse().SerializeToString()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the exporter gave up waiting and closed the connection
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def app_process(endpoint: str) -> Iterator[str]:
    """The application under uvicorn, exporting to ``endpoint``; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": str(EXPORT_TIMEOUT),
        "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(BATCH),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": "true",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": str(EXPORT_TIMEOUT),
        "OTEL_BLRP_MAX_QUEUE_SIZE": str(QUEUE),
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": str(BATCH),
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRICS_EXPORTER": "otlp,prometheus",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",  # exports during the run, against the endpoint
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": str(EXPORT_TIMEOUT),
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "uvicorn", "tests.reliability._otlp_app:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    argv += ["--no-access-log", "--lifespan", "off"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                log.seek(0)
                pytest.fail(f"the app did not start: {log.read()[-2000:]!r}")
            yield f"http://127.0.0.1:{port}"
        finally:
            # Killed, not stopped: a graceful exit would wait for the exporter to flush.
            process.kill()
            process.wait(timeout=10)


async def drive(url: str, requests: int) -> tuple[list[float], int, dict[str, int]]:
    """``requests`` GETs from ``CONCURRENCY`` tasks: latencies, failures, the app's stats."""
    latencies: list[float] = []
    failures = 0
    remaining = requests

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.get("/work")
                latencies.append(time.perf_counter() - start)
                failures += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        stats = json.loads((await client.get("/stats")).text)
    return latencies, failures, stats


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.parametrize("endpoint", ["healthy", "down", "slow"])
def test_exporter_faults_never_slow_requests(endpoint: str, scale: float, figures: Figures) -> None:
    requests = int(1500 * scale)
    receiver = Receiver(delay=SLOW if endpoint == "slow" else 0.0)
    with receiver:
        target = f"http://127.0.0.1:{free_port()}" if endpoint == "down" else receiver.endpoint
        with app_process(target) as url:
            asyncio.run(drive(url, 50))  # warm up: imports, connections, the first export
            started = time.monotonic()
            latencies, failures, stats = asyncio.run(drive(url, requests))
            elapsed = time.monotonic() - started
    spans = requests + 50  # the warm-up requests made spans too
    figures(
        f"OTLP endpoint {endpoint}: {requests} requests, {CONCURRENCY} concurrent",
        {
            "requests per second": requests / elapsed,
            "failed requests": failures,
            "latency p50 ms": 1000 * quantile(latencies, 0.5),
            "latency p99 ms": 1000 * quantile(latencies, 0.99),
            "latency max ms": 1000 * max(latencies),
            "spans made": spans,
            "spans taken by the exporter (sent or failed)": stats["exported"],
            "spans dropped (queue full)": stats["dropped"],
            "spans queued at the end (capacity)": f"{stats['queued']} ({stats['capacity']})",
            "spans the endpoint received": receiver.spans if endpoint != "down" else 0,
            "log records taken by the exporter": stats["log_exported"],
            "log records dropped (queue full)": stats["log_dropped"],
        },
    )
    assert failures == 0
    assert quantile(latencies, 0.5) < P50_LATENCY
    assert quantile(latencies, 0.99) < P99_LATENCY
    assert stats["capacity"] == QUEUE
    assert stats["queued"] <= QUEUE
    # Every span is accounted for: handed to the exporter, dropped, or still queued
    # (within one batch: the exporter thread may be taking one while the stats are read).
    assert abs(stats["exported"] + stats["dropped"] + stats["queued"] - spans) <= BATCH
    # One log record per request, accounted for the same way.
    assert stats["log_capacity"] == QUEUE
    logged = stats["log_exported"] + stats["log_dropped"] + stats["log_queued"]
    assert abs(logged - spans) <= BATCH
    if endpoint == "healthy":
        assert stats["dropped"] == 0
        assert stats["log_dropped"] == 0
    else:
        # The exporter is stuck on a dead or slow endpoint: the queue fills and drops.
        assert stats["dropped"] > 0
    if endpoint == "slow":
        # A refused connection fails fast enough for the log exporter to keep up at a
        # slow machine's request rate; an endpoint that answers after 2 s never does.
        assert stats["log_dropped"] > 0
