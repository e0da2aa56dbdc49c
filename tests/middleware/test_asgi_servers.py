"""FastAPI and Starlette behind the ASGI middleware, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

from buttress.middleware import ASGIMiddleware, TrustedPeers
from buttress.telemetry import _names as names

from ._support import Telemetry, serve_asgi

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Boom(RuntimeError):
    pass


def fastapi_app(telemetry: Telemetry, observed: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("kaput")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(body())

    @app.get("/later")
    async def later(tasks: BackgroundTasks) -> dict[str, str]:
        def after() -> None:
            # Runs after the body was sent: the request must already be recorded.
            observed["spans_when_task_ran"] = [s.name for s in telemetry.spans()]
            observed["count_when_task_ran"] = telemetry.count(
                http_request_method="GET", http_route="/later", http_response_status_code="200"
            )
            observed["task_done"].set()

        tasks.add_task(after)
        return {"ok": "yes"}

    app.add_middleware(
        ASGIMiddleware,
        service="checkout",
        metrics_path="/metrics",
        metrics_max_age=0,  # every scrape sees the requests before it
        trusted_peers=TrustedPeers(networks=["127.0.0.1/32"]),
        **telemetry.options(),
    )
    return app


@pytest.fixture
def fastapi_server(telemetry: Telemetry) -> Iterator[tuple[str, dict[str, Any]]]:
    observed: dict[str, Any] = {"task_done": threading.Event()}
    with serve_asgi(fastapi_app(telemetry, observed)) as url:
        yield url, observed


def test_fastapi_span_metrics_log_and_header(
    fastapi_server: tuple[str, dict[str, Any]],
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = fastapi_server
    caplog.set_level(logging.INFO, logger="buttress.access")
    response = httpx.get(
        f"{url}/users/42?token=s3cret&page=2",
        headers={"traceparent": TRACEPARENT, "user-agent": "probe/1.0"},
    )
    assert response.status_code == 200
    # No id sent: the trace id serves as the correlation id.
    assert response.headers[names.REQUEST_ID_HEADER] == TRACE_ID

    (span,) = telemetry.spans()
    assert span.name == "GET /users/{user_id}"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    attrs = dict(span.attributes or {})
    port = int(url.rsplit(":", 1)[1])
    client_port = attrs.pop("client.port")  # the test client's ephemeral port
    assert isinstance(client_port, int)
    assert 0 < client_port < 65536
    assert attrs == {
        "http.request.method": "GET",
        "http.route": "/users/{user_id}",
        "http.response.status_code": 200,
        "url.path": "/users/42",
        "url.query": "token=REDACTED&page=2",
        "url.scheme": "http",
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/1.0",
        "network.protocol.version": "1.1",
        "buttress.request_id": TRACE_ID,
        "buttress.peer.trusted": True,
    }
    assert span.status.status_code is StatusCode.UNSET

    labels = {
        "http_request_method": "GET",
        "http_route": "/users/{user_id}",
        "http_response_status_code": "200",
        "error_type": "",
    }
    assert telemetry.count(**labels) == 1
    size = telemetry.registry.get_sample_value(f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum", labels)
    assert size == len(response.content)
    active = telemetry.registry.get_sample_value(
        names.HTTP_SERVER_ACTIVE, {"http_request_method": "GET"}
    )
    assert active == 0

    (record,) = [r for r in caplog.records if r.name == "buttress.access"]
    assert record.getMessage() == names.EVENT_ACCESS
    fields = record.__dict__
    assert (fields["method"], fields["route"], fields["status"]) == ("GET", "/users/{user_id}", 200)
    assert fields["request_id"] == TRACE_ID
    assert fields["trace_id"] == TRACE_ID
    assert fields["span_id"] == format(span.context.span_id, "016x")
    assert fields["query"] == "token=REDACTED&page=2"
    assert fields["service"] == "checkout"
    assert fields["duration_ms"] >= 0
    assert "s3cret" not in repr(fields)


def test_incoming_id_is_echoed_and_unsafe_id_replaced(
    fastapi_server: tuple[str, dict[str, Any]], telemetry: Telemetry
) -> None:
    url, _ = fastapi_server
    ok = httpx.get(f"{url}/users/1", headers={"X-Request-ID": "req-123"})
    assert ok.headers["x-request-id"] == "req-123"
    bad = httpx.get(f"{url}/users/1", headers={"X-Request-ID": "a" * 500})
    replaced = bad.headers["x-request-id"]
    assert replaced != "a" * 500
    assert len(replaced) == 32
    spans = telemetry.spans()
    assert [s.attributes["buttress.request_id"] for s in spans if s.attributes] == [
        "req-123",
        replaced,
    ]


def test_unmatched_paths_share_one_route(
    fastapi_server: tuple[str, dict[str, Any]], telemetry: Telemetry
) -> None:
    url, _ = fastapi_server
    with httpx.Client(base_url=url) as client:
        for i in range(20):
            assert client.get(f"/nothing/{i}").status_code == 404
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route=names.ROUTE_UNMATCHED,
            http_response_status_code="404",
        )
        == 20
    )
    assert {s.name for s in telemetry.spans()} == {"GET"}
    assert all("http.route" not in (s.attributes or {}) for s in telemetry.spans())


def test_exception_gives_500_with_id_and_error_span(
    fastapi_server: tuple[str, dict[str, Any]], telemetry: Telemetry
) -> None:
    url, _ = fastapi_server
    response = httpx.get(f"{url}/boom", headers={"X-Request-ID": "failing-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "failing-1"
    (span,) = telemetry.spans()
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.Boom"
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route="/boom",
            http_response_status_code="500",
            error_type=f"{__name__}.Boom",
        )
        == 1
    )


def test_streaming_sizes_and_background_task_after_the_request(
    fastapi_server: tuple[str, dict[str, Any]], telemetry: Telemetry
) -> None:
    url, observed = fastapi_server
    response = httpx.get(f"{url}/stream")
    assert response.text == "".join(f"chunk {i}\n" for i in range(5))
    labels = {
        "http_request_method": "GET",
        "http_route": "/stream",
        "http_response_status_code": "200",
        "error_type": "",
    }
    size = telemetry.registry.get_sample_value(f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum", labels)
    assert size == len(response.content)

    assert httpx.get(f"{url}/later").status_code == 200
    assert observed["task_done"].wait(timeout=10)
    # The background task saw the request span ended and its duration recorded.
    assert "GET /later" in observed["spans_when_task_ran"]
    assert observed["count_when_task_ran"] == 1


def test_metrics_endpoint_negotiates_openmetrics_with_exemplars(
    fastapi_server: tuple[str, dict[str, Any]], telemetry: Telemetry
) -> None:
    url, _ = fastapi_server
    httpx.get(f"{url}/users/7", headers={"traceparent": TRACEPARENT})
    plain = httpx.get(f"{url}/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert 'http_route="/users/{user_id}"' in plain.text
    om = httpx.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert f'# {{trace_id="{TRACE_ID}"}}' in om.text
    assert om.text.rstrip().endswith("# EOF")
    # The scrape itself is neither measured nor traced.
    assert "/metrics" not in om.text
    assert [s.name for s in telemetry.spans()] == ["GET /users/{user_id}"]


def starlette_app(telemetry: Telemetry) -> Any:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"item {request.path_params['item_id']}")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = [Route("/items/{item_id:int}", item)]
    app = Starlette(
        routes=[
            Route("/healthz", health),
            Route("/api/healthcare", health),
            Mount("/v1", routes=inner),
            Mount("/tenants/{tenant}", routes=[Route("/items/{item_id:int}", item)]),
        ]
    )
    # The tests' clients are peers on loopback: their ids and trace context count.
    peers = TrustedPeers(networks=["127.0.0.1/32"])
    return ASGIMiddleware(app, exclude=("/healthz",), trusted_peers=peers, **telemetry.options())


def test_starlette_mounts_and_exclusions(telemetry: Telemetry) -> None:
    with serve_asgi(starlette_app(telemetry)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/v1/items/3").text == "item 3"
        for tenant in ("a", "b", "c"):
            assert client.get(f"/tenants/{tenant}/items/9").status_code == 200
        health = client.get("/healthz")
        assert health.status_code == 200
        assert "x-request-id" in health.headers  # the id is on every response
        assert client.get("/api/healthcare").status_code == 200

    routes = {dict(labels)["http_route"] for labels in telemetry.series()}
    assert routes == {"/v1/items/{item_id}", "/tenants/{tenant}/items/{item_id}", "/api/healthcare"}
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route="/tenants/{tenant}/items/{item_id}",
            http_response_status_code="200",
        )
        == 3
    )
    names_ = sorted(s.name for s in telemetry.spans())
    assert "GET /healthz" not in names_
    assert "GET /api/healthcare" in names_
