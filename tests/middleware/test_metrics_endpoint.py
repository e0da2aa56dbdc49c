"""The ``/metrics`` endpoint: GET/HEAD only, optional token and networks, bounded renders."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from buttress import ConfigurationError
from buttress.middleware import ASGIMiddleware, WSGIMiddleware, serve_metrics
from buttress.middleware._endpoint import MetricsEndpoint
from buttress.testing import FakeClock

from .._services import free_port
from ._support import call_asgi, response_header

TOKEN = "scrape-token-0123456789"


class Counting:
    """A collector that counts its renders and the threads they ran on."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.threads: list[str] = []
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.current_thread().name)
        family = GaugeMetricFamily("renders_seen", "Renders so far.")
        family.add_metric([], len(self.threads))
        yield family


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _asgi(registry: CollectorRegistry, **options: Any) -> ASGIMiddleware:
    return ASGIMiddleware(
        _ok, metrics_path="/metrics", metrics_registry=registry, tracing=False, **options
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "get", "OPTIONS", "BREW"])
async def test_only_get_and_head_are_answered(method: str) -> None:
    registry = CollectorRegistry()
    counting = Counting(registry)
    sent = await call_asgi(_asgi(registry), "/metrics", method=method)
    assert sent[0]["status"] == 405
    assert response_header(sent, b"allow") == b"GET, HEAD"
    assert counting.threads == []  # refused before any render


async def test_head_has_no_body_and_get_renders_off_the_loop() -> None:
    registry = CollectorRegistry()
    counting = Counting(registry)
    app = _asgi(registry, metrics_max_age=0)
    head = await call_asgi(app, "/metrics", method="HEAD")
    get = await call_asgi(app, "/metrics")
    assert (head[0]["status"], head[1]["body"]) == (200, b"")
    assert b"renders_seen 2.0" in get[1]["body"]
    loop_thread = threading.current_thread().name
    assert len(counting.threads) == 2
    assert loop_thread not in counting.threads  # rendered on a worker thread


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), (b"Bearer wrong", 401), (b"Bearer " + TOKEN.encode(), 200),
     (TOKEN.encode(), 401), (b"Bearer " + TOKEN.encode() + b"x", 401)],
)  # fmt: skip
async def test_a_token_can_be_required(authorization: bytes | None, status: int) -> None:
    registry = CollectorRegistry()
    headers = [] if authorization is None else [(b"authorization", authorization)]
    sent = await call_asgi(_asgi(registry, metrics_token=TOKEN), "/metrics", headers=headers)
    assert sent[0]["status"] == status
    if status == 401:
        assert response_header(sent, b"www-authenticate") == b"Bearer"


@pytest.mark.parametrize(("networks", "status"), [(["10.0.0.0/8"], 403), (["127.0.0.0/8"], 200)])
async def test_networks_can_be_required(networks: list[str], status: int) -> None:
    app = _asgi(CollectorRegistry(), metrics_networks=networks)
    sent = await call_asgi(app, "/metrics")  # from 127.0.0.1
    assert sent[0]["status"] == status


def test_wsgi_checks_the_same() -> None:
    registry = CollectorRegistry()
    Counting(registry)
    app = WSGIMiddleware(
        lambda environ, start_response: [],
        metrics_path="/metrics",
        metrics_token=TOKEN,
        metrics_registry=registry,
        tracing=False,
    )
    answers: list[str] = []

    def call(method: str, authorization: str | None) -> bytes:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/metrics",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(),
        }
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            answers.append(status)
            return lambda data: None

        return b"".join(app(environ, start_response))

    call("POST", f"Bearer {TOKEN}")
    call("GET", None)
    assert b"renders_seen" in call("GET", f"Bearer {TOKEN}")
    assert call("HEAD", f"Bearer {TOKEN}") == b""
    assert answers == ["405 Method Not Allowed", "401 Unauthorized", "200 OK", "200 OK"]


def test_repeated_scrapes_cost_one_render_per_max_age() -> None:
    registry = CollectorRegistry()
    counting = Counting(registry)
    clock = FakeClock()
    endpoint = MetricsEndpoint(registry, max_age=5.0, clock=clock)
    for _ in range(20):
        endpoint.body(None)
    assert len(counting.threads) == 1
    clock.advance(5.0)
    endpoint.body(None)
    endpoint.body("application/openmetrics-text")  # each format has its own body
    assert len(counting.threads) == 3


def test_concurrent_scrapers_share_renders() -> None:
    registry = CollectorRegistry()
    counting = Counting(registry)
    endpoint = MetricsEndpoint(registry, max_age=60.0)
    threads = [
        threading.Thread(target=lambda: [endpoint.body(None) for _ in range(50)]) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(counting.threads) == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"metrics_token": "short"}, "16 characters"),
        ({"metrics_max_age": -1}, "-1"),
        ({"metrics_max_age": 3600}, "3600"),
        ({"metrics_networks": ["nope"]}, "nope"),
        ({"metrics_networks": []}, "networks"),
    ],
)
def test_bad_endpoint_options_are_named(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        _asgi(CollectorRegistry(), **options)


def test_serve_metrics_on_its_own_port() -> None:
    registry = CollectorRegistry()
    counting = Counting(registry)
    port = free_port()
    server = serve_metrics(port, metrics_registry=registry, token=TOKEN, max_age=0)
    try:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = httpx.get(f"{base}/metrics", headers=auth)
        assert ok.status_code == 200
        assert "renders_seen 1.0" in ok.text
        assert httpx.head(f"{base}/metrics", headers=auth).content == b""
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.post(f"{base}/metrics", headers=auth).status_code == 405
        assert httpx.get(f"{base}/other", headers=auth).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert len(counting.threads) == 2
    with pytest.raises(ConfigurationError, match="niceness"):
        serve_metrics(port, niceness=40)


def test_endpoint_options_need_a_path() -> None:
    with pytest.raises(ConfigurationError, match="metrics_path"):
        ASGIMiddleware(_ok, metrics_token=TOKEN, metrics=False)
