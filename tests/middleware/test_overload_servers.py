"""Overload protection and health with real servers on 127.0.0.1: uvicorn, redis-server.

Criticality order under overload and deadline refusals on one uvicorn; a rate limit
shared by two uvicorn processes through a real Redis; readiness that follows a named
breaker as it opens and closes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from buttress import CircuitBreaker
from buttress.middleware import Admission, ASGIMiddleware, Health, TrustedPeers
from buttress.telemetry import _names as names
from buttress.testing import FakeClock

from .._services import RedisServer, free_port, require_binary, stop_process, wait_for_port
from ._support import eventually, serve_asgi

ROOT = Path(__file__).resolve().parents[2]
PEERS = TrustedPeers(networks=["127.0.0.1/32"])


class Held:
    """An ASGI app whose requests stay in flight until the test releases them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.entered += 1
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def _in_flight(admission: Admission) -> int:
    assert admission.concurrency is not None
    return admission.concurrency.in_flight


def test_under_overload_sheddable_requests_go_first_and_critical_ones_last() -> None:
    held = Held()
    admission = Admission(limit=10)
    app = ASGIMiddleware(
        held, admission=admission, trusted_peers=PEERS, metrics_registry=CollectorRegistry()
    )
    header = names.CRITICALITY_HEADER
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        background: list[threading.Thread] = []
        answers: list[int] = []

        def hold(criticality: str) -> None:
            thread = threading.Thread(
                target=lambda: answers.append(
                    client.get("/work", headers={header: criticality}).status_code
                )
            )
            thread.start()
            background.append(thread)

        def now(criticality: str) -> int:
            return client.get("/work", headers={header: criticality}).status_code

        for _ in range(8):
            hold("default")
        assert eventually(lambda: _in_flight(admission) == 8)
        # 8 in flight of 10: sheddable requests (75%) are refused, the others not yet.
        assert now("sheddable") == 503
        hold("default")
        assert eventually(lambda: _in_flight(admission) == 9)
        assert now("default") == 503  # 90% reached
        assert now("sheddable") == 503
        hold("critical")
        assert eventually(lambda: _in_flight(admission) == 10)
        assert now("critical") == 503  # the whole limit
        assert held.entered == 10
        held.release.set()
        for thread in background:
            thread.join(timeout=10)
    assert answers == [200] * 10
    assert _in_flight(admission) == 0


def test_a_deadline_that_cannot_be_met_is_refused_before_any_work() -> None:
    class Slow:
        entered = 0

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            Slow.entered += 1
            await asyncio.sleep(0.05)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    admission = Admission(limit="gradient", window=0.01)
    app = ASGIMiddleware(
        Slow(), admission=admission, trusted_peers=PEERS, metrics_registry=CollectorRegistry()
    )
    deadline = names.DEADLINE_HEADER
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        # Enough requests for the limiter to learn the no-load latency (about 50 ms).
        for _ in range(12):
            assert client.get("/work").status_code == 200
        assert admission.concurrency is not None
        assert admission.concurrency.noload_latency is not None
        assert admission.concurrency.noload_latency >= 0.05
        before = Slow.entered
        assert client.get("/work", headers={deadline: "0.000"}).status_code == 504
        # Time left, but less than the fastest this service answers: refused too.
        assert client.get("/work", headers={deadline: "0.010"}).status_code == 504
        assert Slow.entered == before  # neither started any work
        assert client.get("/work", headers={deadline: "5.000"}).status_code == 200


def _uvicorn(redis_url: str, service: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "OVERLOAD_REDIS_URL": redis_url,
        "OVERLOAD_SERVICE": service,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "tests.middleware.overload_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=20)
    except BaseException:
        stop_process(process)
        raise
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(require_binary("redis-server")) as server:
        yield server


def test_a_rate_limit_is_shared_by_two_processes_through_redis(
    redis_server: RedisServer,
) -> None:
    service = f"overload-{time.monotonic_ns()}"
    first, url_a = _uvicorn(redis_server.url, service)
    try:
        second, url_b = _uvicorn(redis_server.url, service)
        try:
            key = {"X-API-Key": "team-a"}
            with httpx.Client(timeout=10) as client:
                answers = [
                    client.get(f"{url}/orders", headers=key)
                    for url in (url_a, url_b, url_a, url_b, url_a, url_b)
                ]
                other = client.get(f"{url_b}/orders", headers={"X-API-Key": "team-b"})
            statuses = [a.status_code for a in answers]
            assert statuses == [200, 200, 200, 200, 200, 429]  # 5 per minute, for both
            assert len({a.text for a in answers[:5]}) == 2  # two processes answered
            refused = answers[5]
            assert refused.headers["ratelimit-policy"] == '"api";q=5;w=60'
            limit = refused.headers["ratelimit"]
            assert limit.startswith('"api";r=0;t=')
            assert 1 <= int(limit.rsplit("=", 1)[1]) <= 12  # the next token, within 60/5 s
            assert refused.headers["retry-after"] == limit.rsplit("=", 1)[1]
            assert other.status_code == 200  # another key has its own bucket
        finally:
            stop_process(second)
    finally:
        stop_process(first)


def test_readiness_follows_a_named_breaker_as_it_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("payments", consecutive_failures=2, reset_timeout=30.0, clock=clock)
    registry = CollectorRegistry()

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = ASGIMiddleware(ok, health=Health(breakers=[breaker]), metrics_registry=registry)

    def fail() -> None:
        raise ConnectionError("payments is down")

    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "UP",
            "components": {"breaker:payments": {"status": "UP", "details": {"state": "closed"}}},
        }
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(fail)
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["components"]["breaker:payments"] == {
            "status": "DOWN",
            "details": {"state": "open"},
        }
        assert client.get("/livez").status_code == 200  # liveness checks nothing else
        clock.advance(30.0)
        breaker.call(lambda: None)  # the trial call succeeds: closed again
        assert client.get("/readyz").status_code == 200
        assert client.head("/readyz").content == b""
        assert client.post("/readyz").status_code == 405
    # Probes are not traffic: nothing of them in the request metrics.
    assert registry.get_sample_value(
        f"{names.HTTP_SERVER_DURATION}_count",
        {
            "http_request_method": "GET",
            "http_route": names.ROUTE_UNMATCHED,
            "http_response_status_code": "200",
            "error_type": "",
        },
    ) in (None, 0.0)
