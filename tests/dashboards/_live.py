"""A real stack on 127.0.0.1 for the live dashboard test: an app, traffic, Prometheus.

``stand_in_service()`` builds the service under test: a Starlette app that records the
HTTP metrics of the contract with prometheus_client, plus resilience events turned into
``buttress_*`` metrics by a listener written here. When the middleware and the telemetry
listeners land, a service built from them replaces it in the ``service_under_test``
fixture; nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import uvicorn
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from buttress import events
from buttress.telemetry import _names as n

from .._services import free_port, wait_for_port

ROUTES = ("/", "/items/{item_id}", "/fail", "/slow")


@dataclass
class ServiceUnderTest:
    """An ASGI app serving ``ROUTES`` and ``/metrics``, and a way to make it use policies."""

    app: Callable[..., Awaitable[None]]
    exercise_resilience: Callable[[], None]
    # Listeners that turn events into metrics: added to the default registry for each
    # test, since the suite's autouse fixture clears it before every test.
    listeners: tuple[events.Listener, ...]


# --- the stand-in service -----------------------------------------------------------------


def _resilience_listener(registry: CollectorRegistry) -> events.Listener:
    """Maps each event to the ``buttress_*`` metric of the contract (a test double)."""
    p, e, o = n.LABEL_POLICY, n.LABEL_ERROR_TYPE, n.LABEL_OUTCOME
    r = registry
    # prometheus_client adds "_total" itself; the contract names include it.
    c: dict[str, Counter] = {}

    def counter(name: str, *labels: str) -> Counter:
        c[name] = Counter(name.removesuffix("_total"), name, labels, registry=r)
        return c[name]

    attempts = counter(n.RETRY_ATTEMPTS, p, e)
    calls = counter(n.RETRY_CALLS, p, o)
    transitions = counter(n.BREAKER_TRANSITIONS, p, n.LABEL_FROM_STATE, n.LABEL_TO_STATE)
    rejections = counter(n.BREAKER_REJECTIONS, p)
    breaker_calls = counter(n.BREAKER_CALLS, p, o)
    bulkhead_rejections = counter(n.BULKHEAD_REJECTIONS, p, n.LABEL_REASON)
    limited = counter(n.RATE_LIMITER_REJECTIONS, p)
    waited = counter(n.RATE_LIMITER_WAITS, p)
    timeouts = counter(n.TIMEOUTS, p)
    fallbacks = counter(n.FALLBACKS, p, e)
    store_errors = counter(n.STORE_ERRORS, p, n.LABEL_STORE, e)
    faults = counter(n.FAULTS_INJECTED, p, n.LABEL_KIND)
    state = Gauge(n.BREAKER_STATE, "state", (p, n.LABEL_STATE), registry=r)
    in_use = Gauge(n.BULKHEAD_IN_USE, "in use", (p,), registry=r)
    waiting = Gauge(n.BULKHEAD_WAITING, "waiting", (p,), registry=r)
    capacity = Gauge(n.BULKHEAD_CAPACITY, "capacity", (p,), registry=r)
    degraded = Gauge(n.STORE_DEGRADED, "degraded", (p, n.LABEL_STORE), registry=r)

    def listener(event: events.Event) -> None:
        match event:
            case events.RetryScheduled():
                attempts.labels(event.name, event.error_type).inc()
            case events.RetryFinished():
                calls.labels(event.name, event.outcome).inc()
            case events.BreakerTransition():
                for s in ("closed", "open", "half_open"):
                    state.labels(event.name, s).set(1 if s == event.new else 0)
                transitions.labels(event.name, event.old, event.new).inc()
            case events.BreakerRejected():
                rejections.labels(event.name).inc()
            case events.BreakerCallRecorded():
                breaker_calls.labels(event.name, event.outcome).inc()
            case events.BulkheadUsage():
                in_use.labels(event.name).set(event.in_use)
                waiting.labels(event.name).set(event.waiting)
                capacity.labels(event.name).set(event.capacity)
            case events.BulkheadRejected():
                bulkhead_rejections.labels(event.name, event.reason).inc()
            case events.RateLimitRejected():
                limited.labels(event.name).inc()
            case events.RateLimitWaited():
                waited.labels(event.name).inc()
            case events.TimeoutExpired():
                timeouts.labels(event.name).inc()
            case events.FallbackUsed():
                fallbacks.labels(event.name, event.error_type).inc()
            case events.StoreUnavailable():
                store_errors.labels(event.name, event.store, event.error_type).inc()
                degraded.labels(event.name, event.store).set(1)
            case events.StoreRecovered():
                degraded.labels(event.name, event.store).set(0)
            case events.FaultInjected():
                faults.labels(event.name, event.kind).inc()

    return listener


def _one_of_each() -> None:
    """Every resilience event once, through the default registry, as policies would."""
    emit = events.default_registry.emit
    emit(events.RetryScheduled("upstream", 1, 0.01, "ConnectError"))
    emit(events.RetryFinished("upstream", 2, "success", ""))
    emit(events.RetryFinished("upstream", 3, "budget", "ConnectError"))
    emit(events.BreakerCallRecorded("upstream", "failure", False))
    emit(events.BreakerTransition("upstream", "closed", "open", "failure_rate"))
    emit(events.BreakerRejected("upstream", "open"))
    emit(events.BreakerTransition("upstream", "open", "half_open", "wait_elapsed"))
    emit(events.BulkheadUsage("upstream", 3, 1, 4))
    emit(events.BulkheadRejected("upstream", "full"))
    emit(events.RateLimitRejected("upstream", 0.5))
    emit(events.RateLimitWaited("upstream", 0.1))
    emit(events.TimeoutExpired("upstream", 1.0))
    emit(events.FallbackUsed("upstream", "CircuitOpen"))
    emit(events.StoreUnavailable("upstream", "redis", "ConnectionError"))
    emit(events.FaultInjected("upstream", "latency"))


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _fail(request: Request) -> Response:
    return PlainTextResponse("boom", status_code=500)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(0.35)  # past the 300 ms latency threshold of the test SLO
    return PlainTextResponse("slow")


_Endpoint = Callable[[Request], Awaitable[Response]]
_ENDPOINTS: dict[str, _Endpoint] = {
    "/": _ok,
    "/items/{item_id}": _ok,
    "/fail": _fail,
    "/slow": _slow,
}


def app_routes(wrap: Callable[[str, _Endpoint], _Endpoint] | None = None) -> list[Route]:
    """The routes of the service under test; ``wrap(template, endpoint)`` may instrument each."""
    return [Route(t, wrap(t, _ENDPOINTS[t]) if wrap else _ENDPOINTS[t]) for t in ROUTES]


def stand_in_service(buckets: tuple[float, ...]) -> ServiceUnderTest:
    registry = CollectorRegistry()
    duration = Histogram(
        n.HTTP_SERVER_DURATION,
        "Duration of HTTP server requests.",
        (n.LABEL_METHOD, n.LABEL_ROUTE, n.LABEL_STATUS),
        buckets=buckets,
        registry=registry,
    )
    active = Gauge(
        n.HTTP_SERVER_ACTIVE, "Requests in flight.", (n.LABEL_METHOD,), registry=registry
    )

    def instrumented(template: str, endpoint: _Endpoint) -> _Endpoint:
        async def handler(request: Request) -> Response:
            start = time.perf_counter()
            active.labels(request.method).inc()
            try:
                response = await endpoint(request)
            finally:
                active.labels(request.method).dec()
            duration.labels(request.method, template, str(response.status_code)).observe(
                time.perf_counter() - start
            )
            return response

        return handler

    app = Starlette(
        routes=[
            *app_routes(instrumented),
            Mount("/metrics", prometheus_client.make_asgi_app(registry)),
        ]
    )
    return ServiceUnderTest(
        app=app, exercise_resilience=_one_of_each, listeners=(_resilience_listener(registry),)
    )


# --- serving, traffic, Prometheus ------------------------------------------------------------


@contextlib.contextmanager
def serve(app: Callable[..., Awaitable[None]]) -> Iterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields the port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def traffic(port: int, service: ServiceUnderTest, *, max_requests: int = 3000) -> Iterator[None]:
    """Requests to every route (some failing, some slow) until the block ends or the cap."""
    stop = threading.Event()
    paths = ["/", "/items/1", "/items/2", "/fail", "/items/3", "/slow"]

    def drive() -> None:
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while not stop.is_set() and sent < max_requests:
                for path in paths:
                    client.get(path)
                    sent += 1
                service.exercise_resilience()
                stop.wait(0.05)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


class Prometheus:
    """A throw-away prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(self, binary: str, *, job: str, target_port: int, rules: dict[str, Any]) -> None:
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="buttress-prometheus-"))
        (self._dir / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self._dir / "rules.yaml")],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (self._dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._argv = [
            binary,
            f"--config.file={self._dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self._dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def __enter__(self) -> Prometheus:
        self._process = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)
        deadline = time.monotonic() + 30
        while self.client.get("/-/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready in 30 s")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now; raises on a query error."""
        response = self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {expr}\n{body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def label_values(self, series: str, label: str) -> list[str]:
        response = self.client.get("/api/v1/series", params={"match[]": series})
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"series query failed: {series}\n{body.get('error')}")
        return sorted({s[label] for s in body["data"] if label in s})
