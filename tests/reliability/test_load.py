"""The middleware under load: uvicorn at saturation, driven from another process.

Zero errors, every response the generator saw is counted in the server's metrics, and
the server's memory stays flat between the first and the last third of the run.
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
CONCURRENCY = 32
# Growth allowed between the end of the first third and the end of the run: CPython's
# allocator keeps some freed arenas, and caches (routes, label children, interned
# strings) settle during the first third. A leak larger than this slack divided by the
# requests of the last two thirds, per request, fails the test; the figures say how small
# a leak the run could see.
MEMORY_SLACK_KB = 4096


def rss_kb(pid: int) -> int:
    """The resident set size of process ``pid``, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def scraped_requests(url: str) -> tuple[int, dict[str, int]]:
    """The sum of ``http_server_request_duration_seconds_count``, and by status code."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0
    by_status: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{"):
            labels, value = line.rsplit(" ", 1)
            count = int(float(value))
            total += count
            status = labels.split('http_response_status_code="', 1)[1].split('"', 1)[0]
            by_status[status] = by_status.get(status, 0) + count
    return total, by_status


def test_middleware_under_load(scale: float, figures: Figures) -> None:
    seconds = 9.0 * scale
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server_argv = [sys.executable, "-m", "uvicorn", "tests.reliability._load_app:app"]
    server_argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server_argv += ["--no-access-log", "--lifespan", "off", "--http", "h11"]
    driver_argv = [sys.executable, "-m", "tests.reliability._load_driver", url]
    driver_argv += [str(seconds), str(CONCURRENCY)]
    with tempfile.TemporaryFile() as server_log:
        server = subprocess.Popen(
            server_argv, cwd=ROOT, env=env, stdout=server_log, stderr=server_log
        )
        try:
            wait_for_port(port, timeout=30)
            # Warm up (imports, first routes, first metric children) before measuring.
            with httpx.Client(base_url=url) as client:
                for i in range(200):
                    client.get(f"/users/{i}" if i % 4 else "/items").raise_for_status()
            warm_requests, warm_by_status = scraped_requests(url)
            driver = subprocess.Popen(driver_argv, cwd=ROOT, env=env, stdout=subprocess.PIPE)
            samples = [rss_kb(server.pid)]
            time.sleep(seconds / 3)
            samples.append(rss_kb(server.pid))
            time.sleep(seconds / 3)
            samples.append(rss_kb(server.pid))
            out, _ = driver.communicate(timeout=seconds + 60)
            samples.append(rss_kb(server.pid))
            assert driver.returncode == 0
            result = json.loads(out)
            counted, by_status = scraped_requests(url)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - only if uvicorn hangs
                server.kill()
                server.wait()
        server_log.seek(0)
        log = server_log.read().decode(errors="replace")
    responses = result["responses"]
    counted -= warm_requests
    growth = samples[-1] - samples[1]
    figures(
        f"middleware under load: uvicorn, {CONCURRENCY} concurrent, {seconds:g} s",
        {
            "responses": responses,
            "requests per second": responses / seconds,
            "statuses": result["statuses"],
            "transport errors": result["errors"],
            "latency p50 / p99 / max ms": (
                f"{1000 * result['p50']:.1f} / {1000 * result['p99']:.1f}"
                f" / {1000 * result['max']:.1f}"
            ),
            "requests counted in /metrics": counted,
            "server RSS KB at 0, 1/3, 2/3, end": samples,
            "RSS growth over the last two thirds KB": growth,
            "smallest leak this run detects, bytes per request": round(
                MEMORY_SLACK_KB * 1024 / max(1, responses * 2 // 3)
            ),
            "server log errors": log.count("Traceback"),
        },
    )
    assert result["errors"] == {}
    assert result["statuses"] == {"200": responses}
    assert responses > 0
    assert counted == responses
    assert by_status == {"200": responses + warm_by_status["200"]}
    assert "Traceback" not in log, log[-3000:]
    assert growth <= MEMORY_SLACK_KB, samples
