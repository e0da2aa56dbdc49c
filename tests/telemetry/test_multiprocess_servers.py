"""Multiprocess metrics under real servers whose workers keep restarting.

gunicorn with 8 workers and a tiny ``max_requests`` (hundreds of restarts through its
``child_exit`` hook), and ``uvicorn --workers 2`` whose workers are killed with requests
in flight (no hook at all: dead workers are found at scrape time). Each request goes
through the middleware, a retry policy, a bulkhead and an httpx transport to a real
upstream. At the end every counter equals the client's own count of answered requests,
no in-flight gauge is left over, and the metrics directory holds only live workers'
files.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._services import free_port, stop_process, wait_for_port

# gunicorn's master forks workers one at a time, with a pause of up to 0.1 s after each:
# restarts, not requests, set this test's time (40 s on a quiet machine, about twice that
# on a loaded one), so it is bounded in count and runs on every `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(300)]

WSGI_APP = """
import os
import ssl
import time

import httpx

import buttress
from buttress.httpx import ResilientTransport
from buttress.middleware import WSGIMiddleware

buttress.configure(service="mp", log_level="WARNING", log_format="json")
bulkhead = buttress.Bulkhead("upstream", max_concurrent=64)
# Made once in the master: a TLS context and the lazy imports (the transport's, the
# event listeners') cost more than a short-lived worker's whole life.
tls = ssl.create_default_context()
httpx.HTTPTransport(verify=tls).close()
with bulkhead:
    pass
_clients = {}


def _client():
    # One per process: gunicorn forks the workers from a master that imported this, and
    # a connection pool must not be shared across processes.
    pid = os.getpid()
    if pid not in _clients:
        inner = httpx.HTTPTransport(verify=tls)
        transport = ResilientTransport(inner, name="upstream")
        _clients[pid] = httpx.Client(transport=transport, trust_env=False)
    return _clients[pid]


@buttress.retry(on=OSError, attempts=2, name="work")
def work():
    with bulkhead:
        return _client().get(os.environ["UPSTREAM"]).status_code


def inner(environ, start_response):
    if environ["PATH_INFO"] == "/hang":
        with open(os.environ["HANG_FILE"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    status = work()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {status}".encode()]


app = WSGIMiddleware(inner, service="mp", metrics_path="/metrics", metrics_max_age=0)
"""

GUNICORN_CONF = """
from buttress.gunicorn import child_exit, on_starting, post_fork  # noqa: F401

preload_app = True  # restarts fork in milliseconds instead of importing again
"""

ASGI_APP = """
import asyncio
import os

import httpx

import buttress
from buttress.httpx import AsyncResilientTransport
from buttress.middleware import ASGIMiddleware

buttress.configure(service="mp", log_level="WARNING", log_format="json")
bulkhead = buttress.Bulkhead("upstream", max_concurrent=64)
client = httpx.AsyncClient(transport=AsyncResilientTransport(name="upstream"))


@buttress.retry(on=OSError, attempts=2, name="work")
async def work():
    async with bulkhead:
        return (await client.get(os.environ["UPSTREAM"])).status_code


async def inner(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/hang":
        with open(os.environ["HANG_FILE"], "w") as f:
            f.write(str(os.getpid()))
        await asyncio.sleep(60)
    status = await work()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{os.getpid()} {status}".encode()})


app = ASGIMiddleware(inner, service="mp", metrics_path="/metrics", metrics_max_age=0)
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    # Its own process, so that its work does not slow down the test's client.
    empty = tmp_path / "upstream"
    empty.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(
        [*argv, "--directory", str(empty)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(process)


def _start(argv: list[str], env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        _stop(process)
        raise AssertionError(log.read_text()) from None
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process, timeout=20)


def _env(tmp_path: Path, upstream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    # Left over from a previous run: emptied when the server starts.
    (metrics / "counter_1234567890.db").write_bytes(b"\0" * 8)
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
        UPSTREAM=upstream,
        HANG_FILE=str(tmp_path / "hang.pid"),
        PYTHONPATH=str(tmp_path),
    )
    return env


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body.decode()


class _Scrape:
    """One ``/metrics`` answer, summed over labels on request."""

    def __init__(self, text: str) -> None:
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def _scrape(base: str) -> _Scrape:
    return _Scrape(_get(base + "/metrics"))


def _send(base: str, count: int) -> int:
    """``count`` requests, 8 at a time; returns how many were answered."""
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: _get(base + "/work"), range(count)))
    assert all(body.endswith(" 200") for body in bodies)
    return len(bodies)


def _hang_and_kill(base: str, hang_file: Path) -> int:
    """Leave a request in flight in some worker, see it counted, then SIGKILL that worker."""
    hang_file.unlink(missing_ok=True)

    def hang() -> None:
        with contextlib.suppress(OSError):  # the worker is killed: no answer
            _get(base + "/hang")

    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    _until(lambda: hang_file.exists() and hang_file.read_text() != "", "the /hang request")
    pid = int(hang_file.read_text())
    _until(lambda: _scrape(base).total("http_server_active_requests") >= 1, "an in-flight request")
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    return pid


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _leftover(env: dict[str, str]) -> Path:
    return Path(env["PROMETHEUS_MULTIPROC_DIR"]) / "counter_1234567890.db"


def _db_files(env: dict[str, str]) -> int:
    return len(list(Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")))


def _settled(base: str, sent: int) -> _Scrape:
    """A scrape once the last answered requests are recorded.

    A WSGI worker records a request when the server closes its body, just after the client
    has read the answer: a scrape served by another worker at that instant may not see it
    yet. Nothing is lost; the count is read again until it is complete (or time is up, and
    the assertions that follow say what is missing).
    """
    name = "http_server_request_duration_seconds_count"
    deadline = time.monotonic() + 10
    while True:
        scrape = _scrape(base)
        if scrape.total(name) >= sent or time.monotonic() > deadline:
            return scrape
        time.sleep(0.05)


def _assert_counts(scrape: _Scrape, sent: int) -> None:
    assert scrape.total("http_server_request_duration_seconds_count") == sent
    assert scrape.total("http_server_response_body_size_bytes_count") == sent
    assert scrape.total("http_client_request_duration_seconds_count") == sent
    assert scrape.total("buttress_retry_calls_total", policy="work") == sent
    assert scrape.total("buttress_circuit_breaker_calls_total", outcome="success") == sent
    # Nothing stuck in flight, whichever workers died holding requests.
    assert scrape.total("http_server_active_requests") == 0
    assert scrape.total("http_client_active_requests") == 0
    assert scrape.total("buttress_bulkhead_in_use") == 0


def test_gunicorn_with_hundreds_of_restarts(tmp_path: Path, upstream: str) -> None:
    (tmp_path / "mp_wsgi.py").write_text(textwrap.dedent(WSGI_APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(GUNICORN_CONF))
    env = _env(tmp_path, upstream)
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--workers", "8", "--bind", f"127.0.0.1:{port}"]
    argv += ["--max-requests", "5", "--max-requests-jitter", "3", "--log-level", "info"]
    argv += ["--config", str(tmp_path / "gunicorn_conf.py"), "mp_wsgi:app"]
    process = _start(argv, env, tmp_path / "gunicorn.log", port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert not _leftover(env).exists()  # emptied by on_starting
        sent = 0
        peak_files = 0
        pids: set[str] = set()
        for _ in range(4):
            sent += _send(base, 225)
            peak_files = max(peak_files, _db_files(env))
        killed = _hang_and_kill(base, tmp_path / "hang.pid")
        _until(
            lambda: _scrape(base).total("http_server_active_requests") == 0, "the killed request"
        )
        sent += _send(base, 100)
        with ThreadPoolExecutor(8) as pool:
            pids = set(pool.map(lambda _: _get(base + "/work").split()[0], range(16)))
        sent += 16
        totals = _settled(base, sent)
    finally:
        _stop(process)
    log = (tmp_path / "gunicorn.log").read_text()
    restarts = len(re.findall(r"Autorestarting worker", log))
    assert restarts >= 100, log[-2000:]  # at 5-8 requests per worker
    assert str(killed) not in pids
    _assert_counts(totals, sent)
    # 8 workers x 4 kinds of file, whatever the number of restarts.
    assert peak_files <= 8 * 4 + 16
    assert _db_files(env) <= 8 * 4


def test_uvicorn_workers_killed_with_requests_in_flight(tmp_path: Path, upstream: str) -> None:
    (tmp_path / "mp_asgi.py").write_text(textwrap.dedent(ASGI_APP))
    env = _env(tmp_path, upstream)
    port = free_port()
    argv = [sys.executable, "-m", "buttress", "workers", "--", sys.executable, "-m", "uvicorn"]
    argv += ["mp_asgi:app", "--workers", "2", "--port", str(port), "--log-level", "info"]
    argv += ["--no-access-log"]
    log = tmp_path / "uvicorn.log"
    process = _start(argv, env, log, port)
    base = f"http://127.0.0.1:{port}"
    try:
        assert not _leftover(env).exists()  # emptied at start
        sent = 0
        for kills in range(1, 7):
            sent += _send(base, 300)
            _hang_and_kill(base, tmp_path / "hang.pid")

            def replaced(kills: int = kills) -> bool:
                return log.read_text().count("Application startup complete") >= 2 + kills

            # uvicorn's supervisor notices and starts a new worker; no hook tells us.
            _until(replaced, "a new worker", timeout=60)
            assert _scrape(base).total("http_server_active_requests") == 0
            assert _db_files(env) <= 2 * 4
        sent += _send(base, 100)
        totals = _settled(base, sent)
    finally:
        _stop(process)
    _assert_counts(totals, sent)
