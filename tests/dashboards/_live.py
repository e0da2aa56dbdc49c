"""A real stack on 127.0.0.1 for the live dashboard test: an app, its upstream, traffic,
Prometheus.

The service under test is a Starlette app behind the real ``ASGIMiddleware``, which
serves ``/metrics`` from the registry it records into. Its handlers call a local upstream
through ``AsyncResilientTransport`` and run buttress policies (retry and its budget,
breakers, a bulkhead, a rate limiter sharing its bucket through Redis, a timeout,
fallbacks). Their events reach the real Prometheus listener, on the same registry.
Nothing emits a resilience event by hand except the app's own fault injection, which
reports each fault it injects with the public ``FaultInjected`` event: buttress has no
fault-injection strategy of its own yet, and the dashboard has a panel for it.

One round of traffic drives every strategy into the states the dashboards show: a
breaker opens, rejects, half-opens and closes; a bulkhead queues one call and rejects
another; a rate limiter makes one call wait and refuses another; a timeout expires;
retries succeed, run out of attempts and are refused by their budget; fallbacks answer.
The breaker's clock is a ``FakeClock`` the driver moves past the reset timeout after each
round, so no one waits for a breaker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import buttress
import buttress.slo
from buttress import events
from buttress.httpx import RETRY_ON, AsyncResilientTransport
from buttress.middleware import Admission, ASGIMiddleware, RateLimit
from buttress.telemetry._listeners import PrometheusListener
from buttress.testing import FakeClock

from .._services import free_port, stop_process, wait_for_port

ASGIApp = Callable[..., Awaitable[None]]
# Longer than the ledger breaker's reset timeout: each round starts with a trial call.
BREAKER_RESET = 30.0
# The rounds' requests: one in twelve fails (/fail), one in twelve is slow (/slow).
PATHS = (
    "/",
    "/items/1",
    "/quote",
    "/items/2",
    "/ledger",
    "/fail",
    "/report",
    "/items/3",
    "/search",
    "/slow",
    "/inventory",
    "/recommendations",
    "/busy",
    "/catalog",
    "/feed",
)
# Past the first request of a test run, every /busy request is refused by a rate limit.
REFUSED_PATHS = {"/busy": 429}


# --- the upstream ----------------------------------------------------------------------------


def upstream_app() -> Starlette:
    """The dependency the service calls: healthy, flaky and failing endpoints."""
    calls: collections.Counter[str] = collections.Counter()

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def prices(request: Request) -> Response:
        # Every other answer is a 503: the transport's retry gets the next one.
        calls["prices"] += 1
        return PlainTextResponse(
            "busy" if calls["prices"] % 2 else "12.50",
            status_code=503 if calls["prices"] % 2 else 200,
        )

    async def ledger(request: Request) -> Response:
        # Two failures in three: enough to open the ledger breaker every round.
        calls["ledger"] += 1
        if calls["ledger"] % 3:
            return PlainTextResponse("ledger down", status_code=500)
        return PlainTextResponse("posted")

    return Starlette(routes=[Route("/ok", ok), Route("/prices", prices), Route("/ledger", ledger)])


@contextlib.contextmanager
def refusing_host() -> Iterator[str]:
    """The URL of a dependency that is down: a port bound on 127.0.0.2 that never listens.

    Connections are refused at once, and as long as the socket is held no one else can
    take the port. Another loopback address than the upstream's gives it its own
    ``server_address``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.2", 0))
        yield f"http://127.0.0.2:{sock.getsockname()[1]}"


# --- the service under test ------------------------------------------------------------------


@dataclass
class ServiceUnderTest:
    """The app to serve, and what the traffic driver does after each round."""

    app: ASGIApp
    after_round: Callable[[], None]


class _Chaos:
    """The app's own fault injection: fails the inventory lookups it is asked to, and says so.

    It reports each fault with the public ``FaultInjected`` event, as a fault-injection
    tool built on buttress would.
    """

    def __init__(self, events_: events.Registry, *, every: int) -> None:
        self._events = events_
        self._every = every
        self._calls = 0

    def maybe_fail(self, policy: str) -> None:
        self._calls += 1
        if self._calls % self._every:  # all but one call in ``every``
            self._events.emit(events.FaultInjected(policy, "exception"))
            raise ConnectionError(f"{policy}: connection reset (injected)")


def checkout_service(
    *,
    service: str,
    slos: Sequence[buttress.slo.SLO],
    upstream: str,
    down: str,
    store: buttress.RedisStore,
) -> ServiceUnderTest:
    """The app under test, with every strategy its handlers use."""
    registry = CollectorRegistry()
    # The strategies' own event registry, with the real listener recording into the
    # registry the middleware serves. (The suite clears the default registry around each
    # test; a registry of the app's own is unaffected.)
    app_events = events.Registry()
    app_events.add(PrometheusListener(registry))
    breaker_clock = FakeClock()

    pricing = httpx.AsyncClient(
        base_url=upstream,
        timeout=5.0,
        transport=AsyncResilientTransport(
            name="pricing",
            retry=buttress.retry(
                on=RETRY_ON, attempts=3, wait_initial=0.005, wait_max=0.02, events=app_events
            ),
            metrics_registry=registry,
            events=app_events,
        ),
    )
    # The promotions service is down: each request is tried twice, then the quote does
    # without a discount. No breaker: every request reaches the network (and the metrics).
    promotions = httpx.AsyncClient(
        base_url=down,
        timeout=5.0,
        transport=AsyncResilientTransport(
            name="promotions",
            retry=buttress.retry(
                on=RETRY_ON, attempts=2, wait_initial=0.005, wait_max=0.02, events=app_events
            ),
            breaker=None,
            metrics_registry=registry,
            events=app_events,
        ),
    )
    ledger_client = httpx.AsyncClient(
        base_url=upstream,
        timeout=5.0,
        transport=AsyncResilientTransport(
            name="ledger",
            retry=None,
            breaker=functools.partial(
                buttress.CircuitBreaker,
                consecutive_failures=2,
                reset_timeout=BREAKER_RESET,
                clock=breaker_clock,
                events=app_events,
            ),
            metrics_registry=registry,
            events=app_events,
        ),
    )

    @buttress.fallback("no discount", on=httpx.TransportError, name="promotions", events=app_events)
    async def discount() -> str:
        response = await promotions.get("/discount")
        return response.text

    @buttress.fallback("queued", on=buttress.CircuitOpen, name="ledger", events=app_events)
    async def post_entry() -> str:
        response = await ledger_client.get("/ledger")
        return response.text

    @buttress.Policy(
        buttress.fallback("cached", on=buttress.BulkheadFull, events=app_events),
        buttress.Bulkhead("reports", max_concurrent=1, max_waiting=1, events=app_events),
        name="reports",
    )
    async def report_part() -> str:
        response = await pricing.get("/ok")
        return response.text

    @buttress.Policy(
        buttress.fallback("try again", on=buttress.RateLimited, events=app_events),
        # A token every 100 ms: of three calls at once, one goes, one waits, one is refused.
        buttress.RateLimiter(
            "search", rate=10, burst=1, max_wait=0.15, store=store, events=app_events
        ),
        name="search",
    )
    async def search_once() -> str:
        return "results"

    chaos = _Chaos(app_events, every=3)

    @buttress.Policy(
        buttress.fallback("unknown", on=ConnectionError, events=app_events),
        buttress.retry(
            on=ConnectionError,
            attempts=3,
            wait_initial=0.005,
            wait_max=0.02,
            budget=0.2,
            budget_floor=0.1,  # one retry in ten seconds beyond the share: soon refused
            events=app_events,
        ),
        name="inventory",
    )
    async def stock_level() -> str:
        chaos.maybe_fail("inventory")
        return "7 left"

    @buttress.Policy(
        buttress.fallback("bestsellers", on=buttress.TimedOut, events=app_events),
        buttress.timeout(0.05, events=app_events),
        name="recommendations",
    )
    async def recommend() -> str:
        await asyncio.sleep(1.0)  # a model that is too slow; the timeout cancels it
        return "for you"

    catalog_calls = itertools.count()

    @buttress.Policy(
        # Every other first attempt hangs: the hedge sent after 10 ms answers first.
        buttress.hedge(delay=0.01, budget=None, events=app_events),
        name="catalog",
    )
    async def catalog_page() -> str:
        if next(catalog_calls) % 2 == 0:
            await asyncio.sleep(0.3)
        return "page"

    @buttress.Policy(
        buttress.fallback(
            "stale feed", on=(ConnectionError, buttress.Throttled), events=app_events
        ),
        # A draw of 0 refuses whenever the refusal chance is above 0: after the feed's
        # first refusal, calls are throttled until the window forgets it.
        buttress.throttle(on=ConnectionError, random=lambda: 0.0, events=app_events),
        name="feed",
    )
    async def feed_once() -> str:
        raise ConnectionError("the feed refuses everything")

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def catalog(request: Request) -> Response:
        return PlainTextResponse(await catalog_page())

    async def feed(request: Request) -> Response:
        return PlainTextResponse(" ".join([await feed_once() for _ in range(3)]))

    async def fail(request: Request) -> Response:
        return PlainTextResponse("boom", status_code=500)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.35)  # past the 300 ms latency threshold of the test SLO
        return PlainTextResponse("slow")

    async def quote(request: Request) -> Response:
        response = await pricing.get("/prices")
        return PlainTextResponse(f"{response.text} ({await discount()})")

    async def ledger(request: Request) -> Response:
        # Four entries in a row: the breaker's trial, then two failures open it again,
        # and the last entry meets it open.
        return PlainTextResponse(" ".join([await post_entry() for _ in range(4)]))

    async def report(request: Request) -> Response:
        # Three parts at once against one slot and one waiting place: the third part is
        # refused before the first one's request can have been answered.
        return PlainTextResponse(" ".join(await asyncio.gather(*(report_part() for _ in "abc"))))

    async def search(request: Request) -> Response:
        return PlainTextResponse(" ".join(await asyncio.gather(*(search_once() for _ in "abc"))))

    async def inventory(request: Request) -> Response:
        return PlainTextResponse(await stock_level())

    async def recommendations(request: Request) -> Response:
        return PlainTextResponse(await recommend())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for client in (pricing, promotions, ledger_client):
            await client.aclose()

    app = Starlette(
        routes=[
            Route("/", ok),
            Route("/items/{item_id}", ok),
            Route("/fail", fail),
            Route("/slow", slow),
            Route("/quote", quote),
            Route("/ledger", ledger),
            Route("/report", report),
            Route("/search", search),
            Route("/inventory", inventory),
            Route("/recommendations", recommendations),
            Route("/busy", ok),
            Route("/catalog", catalog),
            Route("/feed", feed),
        ],
        lifespan=lifespan,
    )
    return ServiceUnderTest(
        app=ASGIMiddleware(
            app,
            service=service,
            metrics_registry=registry,
            slos=slos,
            metrics_path="/metrics",
            # Inbound admission: an adaptive limit the traffic never reaches, and a rate
            # limit /busy soon exceeds, so the admission panels have refusals to show.
            admission=Admission(
                window=0.05,
                rate_limits=[RateLimit("busy", rate=1, per=3600, key="global", routes=["/busy"])],
                events=app_events,
            ),
        ),
        after_round=functools.partial(breaker_clock.advance, 2 * BREAKER_RESET),
    )


# --- serving, traffic, Prometheus ------------------------------------------------------------


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Traffic:
    """What the driver has done: rounds completed, and the statuses each path answered."""

    rounds: int = 0
    statuses: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    _progress: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_rounds(self, count: int, *, timeout: float = 30.0) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: self.rounds >= count, timeout):
                raise TimeoutError(f"{self.rounds} rounds of traffic after {timeout}s")

    def round_done(self) -> None:
        with self._progress:
            self.rounds += 1
            self._progress.notify_all()


@contextlib.contextmanager
def traffic(port: int, service: ServiceUnderTest, *, max_requests: int = 3000) -> Iterator[Traffic]:
    """Rounds of requests to every path until the block ends or the cap is reached."""
    stop = threading.Event()
    done = Traffic()

    def drive() -> None:
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set() and sent < max_requests:
                for path in PATHS:
                    done.statuses[path][client.get(path).status_code] += 1
                    sent += 1
                service.after_round()
                done.round_done()
                stop.wait(0.05)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=15)


class Prometheus:
    """A throw-away prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(
        self,
        binary: str,
        *,
        job: str,
        target_port: int,
        rules: dict[str, Any],
        more_targets: dict[str, tuple[int, str]] | None = None,
    ) -> None:
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
                },
                # Other jobs: name -> (port, metrics path).
                *(
                    {
                        "job_name": name,
                        "metrics_path": path,
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    }
                    for name, (port, path) in (more_targets or {}).items()
                ),
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
            stop_process(self._process)
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


@contextlib.contextmanager
def otel_service(*, max_requests: int = 3000) -> Iterator[int]:
    """The OpenTelemetry-only service in its own process, with traffic; yields its port.

    One request in ten fails (500), one in ten is a 404; the traffic stops itself after
    ``max_requests``.
    """
    port = free_port()
    script = Path(__file__).with_name("_otel_service.py")
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        # The stable HTTP conventions: http.server.request.duration, in seconds.
        env={**os.environ, "OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()

    def drive() -> None:
        paths = ("/", "/items/1", "/items/2", "/fail", "/", "/missing", "/items/3") + ("/",) * 3
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set() and sent < max_requests:
                for path in paths:
                    client.get(path)
                    sent += 1
                stop.wait(0.05)

    thread = threading.Thread(target=drive, daemon=True)
    try:
        wait_for_port(port)
        thread.start()
        yield port
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=15)
        stop_process(process)
