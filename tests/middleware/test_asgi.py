"""The ASGI shell driven in-process: interleaving, disconnects, pass-through, options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from buttress import ConfigurationError, get_correlation_id
from buttress.middleware import ASGIMiddleware
from buttress.telemetry import _names as names

from ._support import Message, Telemetry, call_asgi, response_header

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_two_interleaved_requests_see_only_their_own_ids_and_sizes(
    telemetry: Telemetry,
) -> None:
    first_inside = asyncio.Event()
    second_done = asyncio.Event()
    seen: dict[str, str | None] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/a":
            await send({"type": "http.response.body", "body": b"a" * 10, "more_body": True})
            first_inside.set()
            await second_done.wait()  # B runs start to end while A is mid-response
            seen["a"] = get_correlation_id()
            await send({"type": "http.response.body", "body": b"a" * 5})
        else:
            await first_inside.wait()
            seen["b"] = get_correlation_id()
            await send({"type": "http.response.body", "body": b"b" * 1000})
            second_done.set()

    middleware = ASGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    a, b = await asyncio.gather(
        call_asgi(middleware, "/a", headers=[(b"x-request-id", b"id-a")]),
        call_asgi(middleware, "/b", headers=[(b"x-request-id", b"id-b")]),
    )
    assert response_header(a, b"x-request-id") == b"id-a"
    assert response_header(b, b"x-request-id") == b"id-b"
    assert seen == {"a": "id-a", "b": "id-b"}
    assert get_correlation_id() is None  # reset after both
    sizes = {
        s.attributes["url.path"]: (s.attributes["buttress.request_id"])
        for s in telemetry.spans()
        if s.attributes
    }
    assert sizes == {"/a": "id-a", "/b": "id-b"}
    size_sum = telemetry.registry.get_sample_value(
        f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum",
        {
            "http_request_method": "GET",
            "http_route": names.ROUTE_UNMATCHED,
            "http_response_status_code": "200",
            "error_type": "",
        },
    )
    assert size_sum == 1015
    buckets = {
        le: telemetry.registry.get_sample_value(
            f"{names.HTTP_SERVER_RESPONSE_SIZE}_bucket",
            {
                "http_request_method": "GET",
                "http_route": names.ROUTE_UNMATCHED,
                "http_response_status_code": "200",
                "error_type": "",
                "le": le,
            },
        )
        for le in ("100.0", "1000.0")
    }
    assert buckets == {"100.0": 1.0, "1000.0": 2.0}  # 15 bytes and 1000 bytes, not mixed


async def test_client_disconnect_is_recorded(telemetry: Telemetry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "http.disconnect"
        # The client left: nothing to answer.

    middleware = ASGIMiddleware(app, **telemetry.options())
    sent = await call_asgi(middleware, "/upload", receive_messages=[{"type": "http.disconnect"}])
    assert sent == []
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == names.ERROR_CLIENT_DISCONNECT
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route=names.ROUTE_UNMATCHED,
            http_response_status_code=names.STATUS_CLIENT_CLOSED,
            error_type=names.ERROR_CLIENT_DISCONNECT,
        )
        == 1
    )


async def test_raw_app_that_raises_gets_a_500_with_the_id_and_the_error_propagates(
    telemetry: Telemetry,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyError("missing")

    middleware = ASGIMiddleware(app, **telemetry.options())
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(KeyError, match="missing"):
        await middleware(_scope("/x"), _no_body, send)
    assert sent[0]["status"] == 500
    assert (b"x-request-id", get_header(sent, b"x-request-id")) in sent[0]["headers"]
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "KeyError"


async def test_error_response_off_leaves_the_500_to_the_server(telemetry: Telemetry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyError("missing")

    middleware = ASGIMiddleware(app, error_response=False, **telemetry.options())
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(KeyError):
        await middleware(_scope("/x"), _no_body, send)
    assert sent == []
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route=names.ROUTE_UNMATCHED,
            http_response_status_code="500",
            error_type="KeyError",
        )
        == 1
    )


async def test_an_id_set_by_the_app_is_kept(telemetry: Telemetry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"own")]}
        )
        await send({"type": "http.response.body", "body": b""})

    sent = await call_asgi(ASGIMiddleware(app, **telemetry.options()), "/")
    assert response_header(sent, b"x-request-id") == b"own"


async def test_unsampled_requests_record_metrics_without_span_work() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    middleware = ASGIMiddleware(ok_app, tracer_provider=provider, metrics_registry=registry)
    sent = await call_asgi(middleware, "/")
    request_id = response_header(sent, b"x-request-id")
    assert request_id is not None
    assert len(request_id) == 32
    assert exporter.get_finished_spans() == ()
    count = registry.get_sample_value(
        f"{names.HTTP_SERVER_DURATION}_count",
        {
            "http_request_method": "GET",
            "http_route": names.ROUTE_UNMATCHED,
            "http_response_status_code": "200",
            "error_type": "",
        },
    )
    assert count == 1


async def test_features_switch_off(telemetry: Telemetry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    middleware = ASGIMiddleware(
        ok_app,
        tracing=False,
        metrics=False,
        access_log=False,
        request_id_header=None,
        tracer_provider=telemetry.provider,
        metrics_registry=telemetry.registry,
    )
    sent = await call_asgi(middleware, "/")
    assert response_header(sent, b"x-request-id") is None
    assert telemetry.spans() == []
    assert telemetry.series() == set()
    assert [r for r in caplog.records if r.name == "buttress.access"] == []


async def test_unknown_methods_become_other(telemetry: Telemetry) -> None:
    middleware = ASGIMiddleware(ok_app, **telemetry.options())
    for method in ("BREW", "PROPFIND", "get"):
        await call_asgi(middleware, "/", method=method)
    methods = {dict(labels)["http_request_method"] for labels in telemetry.series()}
    assert methods == {"_OTHER"}  # "get" is not GET: methods are case-sensitive
    originals = sorted(
        str(s.attributes.get("http.request.method_original"))
        for s in telemetry.spans()
        if s.attributes
    )
    assert originals == ["BREW", "PROPFIND", "get"]
    assert sorted(s.name for s in telemetry.spans()) == ["HTTP", "HTTP", "HTTP"]


async def test_exclusion_is_exact_or_prefix_never_substring(telemetry: Telemetry) -> None:
    middleware = ASGIMiddleware(
        ok_app, exclude=("/health",), exclude_prefixes=("/internal/",), **telemetry.options()
    )
    for path in ("/health", "/internal/debug", "/api/healthcare", "/health/deep", "/internals"):
        await call_asgi(middleware, path)
    assert sorted(str(s.attributes["url.path"]) for s in telemetry.spans() if s.attributes) == [
        "/api/healthcare",
        "/health/deep",
        "/internals",
    ]


def test_slo_thresholds_become_buckets(telemetry: Telemetry) -> None:
    class SLO:
        def __init__(self, threshold: float | None) -> None:
            self.threshold = threshold

    middleware = ASGIMiddleware(
        ok_app, slos=[SLO(0.3), SLO(None), SLO(0.1)], buckets=(0.1, 1.0), **telemetry.options()
    )
    assert middleware.observer.buckets == (0.1, 0.3, 1.0)


@pytest.mark.parametrize(
    "options",
    [
        {"buckets": ()},
        {"buckets": (0.1, -1.0)},
        {"buckets": (float("nan"),)},
        {"exclude": ("health",)},
        {"metrics_path": "metrics"},
        {"request_id_header": "X Request"},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], telemetry: Telemetry) -> None:
    with pytest.raises(ConfigurationError):
        ASGIMiddleware(ok_app, **{**telemetry.options(), **options})


def test_two_middlewares_on_one_registry_must_agree_on_buckets(telemetry: Telemetry) -> None:
    ASGIMiddleware(ok_app, **telemetry.options())
    ASGIMiddleware(ok_app, **telemetry.options())  # same buckets: shares the instruments
    with pytest.raises(ConfigurationError, match="buckets"):
        ASGIMiddleware(ok_app, buckets=(1.0,), **telemetry.options())


async def test_lifespan_passes_through_and_a_websocket_is_observed(telemetry: Telemetry) -> None:
    events: list[str] = []

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[WebSocketRoute("/ws", echo)], lifespan=lifespan)
    app.add_middleware(ASGIMiddleware, **telemetry.options())

    lifespan_in: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    lifespan_out = await _drive(app, {"type": "lifespan"}, lifespan_in)
    assert [m["type"] for m in lifespan_out] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    ws_in: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "ping"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    ws_scope = {**_scope("/ws"), "type": "websocket", "scheme": "ws", "subprotocols": []}
    ws_out = await _drive(app, ws_scope, ws_in)
    assert [m["type"] for m in ws_out] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert ws_out[1]["text"] == "ping"
    assert events == ["startup", "shutdown"]
    (span,) = telemetry.spans()  # the websocket's; lifespan records nothing
    assert span.name == "WS /ws"
    assert telemetry.series() == set()  # no HTTP request was served


async def test_starlette_405_uses_the_route(telemetry: Telemetry) -> None:
    async def endpoint(request: Any) -> Any:
        raise AssertionError("not called")

    app = Starlette(routes=[Route("/only-post", endpoint, methods=["POST"])])
    app.add_middleware(ASGIMiddleware, **telemetry.options())
    sent = await call_asgi(app, "/only-post")
    assert sent[0]["status"] == 405
    assert (
        telemetry.count(
            http_request_method="GET", http_route="/only-post", http_response_status_code="405"
        )
        == 1
    )


async def _drive(app: Any, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "query_string": b"",
    }


async def _no_body() -> Message:
    return {"type": "http.request", "body": b""}


def get_header(sent: list[Message], name: bytes) -> bytes:
    return response_header(sent, name) or b""


async def test_a_request_without_trace_headers_and_no_current_span_is_a_root(
    telemetry: Telemetry,
) -> None:
    await call_asgi(ASGIMiddleware(ok_app, **telemetry.options()), "/")
    (span,) = telemetry.spans()
    assert span.parent is None


async def test_the_server_span_is_a_child_of_the_current_context(telemetry: Telemetry) -> None:
    # An outer middleware's (non-server) span is current: ours joins its trace, so the
    # request has one trace, whatever the headers say.
    middleware = ASGIMiddleware(ok_app, **telemetry.options())
    outer = telemetry.provider.get_tracer("test").start_span("outer")
    with trace.use_span(outer, end_on_exit=True):
        await call_asgi(middleware, "/", headers=[(b"traceparent", TRACEPARENT.encode())])
    (span,) = [s for s in telemetry.spans() if s.name == "GET"]
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    assert span.context.trace_id == outer.get_span_context().trace_id


async def test_a_current_server_span_is_enriched_not_doubled(telemetry: Telemetry) -> None:
    middleware = ASGIMiddleware(ok_app, **telemetry.options())
    outer = telemetry.provider.get_tracer("other").start_span("GET", kind=SpanKind.SERVER)
    with trace.use_span(outer, end_on_exit=False):
        sent = await call_asgi(middleware, "/")
    assert telemetry.spans() == []  # ours ended nothing: the span belongs to its starter
    outer.end()
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    trace_id = format(outer.get_span_context().trace_id, "032x")
    assert span.attributes["buttress.request_id"] == trace_id
    assert response_header(sent, b"x-request-id") == trace_id.encode()


async def test_a_propagator_without_declared_fields_is_always_asked(telemetry: Telemetry) -> None:
    class Custom(TextMapPropagator):
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            values = getter.get(carrier, "x-custom-trace") if getter else None
            if not values:
                return Context()
            parent = SpanContext(
                int(values[0], 16), 0x1234, is_remote=True, trace_flags=TraceFlags(1)
            )
            return trace.set_span_in_context(NonRecordingSpan(parent))

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            return None

        @property
        def fields(self) -> set[str]:
            return set()

    middleware = ASGIMiddleware(ok_app, **telemetry.options(trusted_peers="any"))
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(Custom())
    try:
        await call_asgi(middleware, "/", headers=[(b"x-custom-trace", b"abc123")])
    finally:
        propagate.set_global_textmap(previous)
    (span,) = telemetry.spans()
    assert span.context.trace_id == 0xABC123


async def test_captured_headers_are_recorded_and_sensitive_ones_redacted(
    telemetry: Telemetry,
) -> None:
    middleware = ASGIMiddleware(
        ok_app, capture_headers=("Authorization", "X-Tenant", "X-Absent"), **telemetry.options()
    )
    headers = [(b"authorization", b"Bearer s3cret"), (b"x-tenant", b"acme")]
    await call_asgi(middleware, "/", headers=headers)
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.authorization"] == ("REDACTED",)
    assert attributes["http.request.header.x-tenant"] == ("acme",)
    assert "http.request.header.x-absent" not in attributes
    assert "s3cret" not in repr(attributes)


async def test_pathsend_ends_the_request(telemetry: Telemetry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/srv/file.bin"})

    sent = await call_asgi(ASGIMiddleware(app, **telemetry.options()), "/file")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert (
        telemetry.count(
            http_request_method="GET",
            http_route=names.ROUTE_UNMATCHED,
            http_response_status_code="200",
        )
        == 1
    )
    assert [s.name for s in telemetry.spans()] == ["GET"]


async def test_a_rejected_incoming_id_is_replaced_by_the_trace_id(telemetry: Telemetry) -> None:
    middleware = ASGIMiddleware(ok_app, **telemetry.options())
    sent = await call_asgi(middleware, "/", headers=[(b"x-request-id", b"no spaces <allowed>")])
    (span,) = telemetry.spans()
    trace_id = format(span.context.trace_id, "032x")
    assert response_header(sent, b"x-request-id") == trace_id.encode()
    assert span.attributes is not None
    assert span.attributes["buttress.request_id"] == trace_id


async def test_host_routing_keeps_the_host_in_the_route(telemetry: Telemetry) -> None:
    async def endpoint(request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok")

    from starlette.routing import Host, Router

    api = Router(routes=[Route("/users/{id}", endpoint)])
    admin = Router(routes=[Route("/users/{id}", endpoint)])
    app = Starlette(routes=[Host("api.example.com", api), Host("{name}.admin.example.com", admin)])
    app.add_middleware(ASGIMiddleware, **telemetry.options())
    for host in (b"api.example.com", b"eu.admin.example.com"):
        await call_asgi(app, "/users/1", headers=[(b"host", host)])
    routes = sorted(str((s.attributes or {})["http.route"]) for s in telemetry.spans())
    assert routes == ["api.example.com/users/{id}", "{name}.admin.example.com/users/{id}"]


async def test_otel_service_name_names_the_service_in_the_access_line(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for the spans' resource (configure() reads the same variable): the variable wins.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-eu")
    caplog.set_level(logging.INFO, logger="buttress.access")
    await call_asgi(ASGIMiddleware(ok_app, service="checkout", **telemetry.options()), "/")
    (line,) = [r for r in caplog.records if r.name == "buttress.access"]
    assert getattr(line, "service", None) == "checkout-eu"
