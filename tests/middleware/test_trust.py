"""The inbound trust boundary: what a request brings is honoured only from trusted peers.

In-process through each shell; the real-server replays of the attacks are in
test_boundary.py.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Literal

import httpx
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from buttress import ConfigurationError, get_correlation_id, retry
from buttress._baggage import MAX_BYTES, MAX_MEMBERS
from buttress._trust import InternalHosts
from buttress.deadline import remaining
from buttress.httpx import RETRY_ON, ResilientTransport
from buttress.middleware import ASGIMiddleware, TrustedPeers, WSGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi, response_header

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01".encode()
SECRET = "a-long-shared-secret-value"
HOSTILE = [
    (b"x-request-id", b"client-chosen-id"),
    (names.DEADLINE_HEADER.lower().encode(), b"0.020"),
    (b"traceparent", TRACEPARENT),
    (b"baggage", b"role=admin,tenant=other"),
]


def _recording(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(
            {
                "id": get_correlation_id(),
                "left": remaining(),
                "baggage": dict(baggage.get_all()),
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def _call(app: Any, headers: Any = None) -> list[Any]:
    return await call_asgi(app, "/", headers=list(headers if headers is not None else HOSTILE))


async def test_by_default_a_client_steers_nothing(telemetry: Telemetry) -> None:
    seen: list[dict[str, Any]] = []
    app = ASGIMiddleware(_recording(seen), **telemetry.options())
    sent = await _call(app)
    (request,) = seen
    assert request["left"] is None  # the deadline header was not honoured
    assert request["baggage"] == {}
    assert request["id"] != "client-chosen-id"
    assert response_header(sent, b"x-request-id") == request["id"].encode()
    (span,) = telemetry.spans()
    # A new trace, linked to the one the client named (findable, but not ours to join).
    assert format(span.context.trace_id, "032x") != TRACE_ID
    assert span.parent is None
    assert [format(link.context.trace_id, "032x") for link in span.links] == [TRACE_ID]
    assert span.attributes is not None
    assert span.attributes[names.ATTR_PEER_TRUSTED] is False


async def test_trusting_any_is_the_internal_mesh_switch(telemetry: Telemetry) -> None:
    seen: list[dict[str, Any]] = []
    app = ASGIMiddleware(_recording(seen), trusted_peers="any", **telemetry.options())
    await _call(app)
    (request,) = seen
    assert request["id"] == "client-chosen-id"
    assert 0 < request["left"] <= 0.02
    assert request["baggage"] == {"role": "admin", "tenant": "other"}
    (span,) = telemetry.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.links == ()


@pytest.mark.parametrize(
    ("networks", "trusted"),
    [
        (["127.0.0.1/32"], True),  # call_asgi's client is 127.0.0.1
        (["127.0.0.0/8", "10.0.0.0/8"], True),
        (["10.0.0.0/8"], False),
        (["::ffff:127.0.0.1/128"], False),  # an IPv6 network never holds an IPv4 peer
        (["::1"], False),
    ],
)
async def test_trusted_networks(telemetry: Telemetry, networks: list[str], trusted: bool) -> None:
    seen: list[dict[str, Any]] = []
    peers = TrustedPeers(networks=networks)
    app = ASGIMiddleware(_recording(seen), trusted_peers=peers, **telemetry.options())
    await _call(app)
    assert (seen[0]["id"] == "client-chosen-id") is trusted
    assert (seen[0]["left"] is not None) is trusted


@pytest.mark.parametrize(
    ("presented", "trusted"),
    [(SECRET.encode(), True), (b"wrong", False), (SECRET.encode() + b"x", False), (b"", False)],
)
async def test_a_shared_secret_header(
    telemetry: Telemetry, presented: bytes, trusted: bool
) -> None:
    seen: list[dict[str, Any]] = []
    peers = TrustedPeers(header="X-Mesh-Secret", secret=SECRET)
    app = ASGIMiddleware(
        _recording(seen),
        trusted_peers=peers,
        capture_headers=["x-mesh-secret"],
        **telemetry.options(),
    )
    await _call(app, headers=[*HOSTILE, (b"x-mesh-secret", presented)])
    assert (seen[0]["id"] == "client-chosen-id") is trusted
    (span,) = telemetry.spans()
    assert span.attributes is not None
    # The secret is never recorded, even when asked for.
    assert span.attributes["http.request.header.x-mesh-secret"] == ("REDACTED",)


@pytest.mark.parametrize("mode", ["always", "never"])
async def test_trace_continuation_is_configured_apart(
    telemetry: Telemetry, mode: Literal["always", "never"]
) -> None:
    seen: list[dict[str, Any]] = []
    app = ASGIMiddleware(_recording(seen), continue_trace=mode, **telemetry.options())
    await _call(app)
    (span,) = telemetry.spans()
    assert (format(span.context.trace_id, "032x") == TRACE_ID) is (mode == "always")
    # Continuing a client's trace never brings its baggage along.
    assert seen[0]["baggage"] == {}


async def test_baggage_from_a_peer_is_cut_to_the_w3c_limits(telemetry: Telemetry) -> None:
    seen: list[dict[str, Any]] = []
    app = ASGIMiddleware(_recording(seen), trusted_peers="any", **telemetry.options())
    many = ",".join(f"k{i}=v{i}" for i in range(150)).encode()
    await _call(app, headers=[(b"baggage", many)])
    big = ",".join(f"k{i}={'x' * 3000}" for i in range(5)).encode()
    await _call(app, headers=[(b"baggage", big)])
    assert len(seen[0]["baggage"]) == MAX_MEMBERS
    assert list(seen[0]["baggage"])[:3] == ["k0", "k1", "k2"]  # kept in order
    assert len(big) > MAX_BYTES
    assert seen[1]["baggage"] == {}  # a header over 8,192 bytes is dropped whole


def test_wsgi_honours_only_trusted_peers(telemetry: Telemetry) -> None:
    seen: list[tuple[str | None, float | None]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((get_correlation_id(), remaining()))
        start_response("200 OK", [])
        return [b"ok"]

    def call(middleware: Any, address: str, secret: str | None = None) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "REMOTE_ADDR": address,
            "HTTP_X_REQUEST_ID": "client-chosen-id",
            "HTTP_X_BUTTRESS_DEADLINE": "0.5",
            "wsgi.input": io.BytesIO(),
        }
        if secret is not None:
            environ["HTTP_X_MESH_SECRET"] = secret
        body = middleware(environ, lambda status, headers, exc_info=None: None)
        list(body)
        body.close()

    peers = TrustedPeers(networks=["10.1.0.0/16"], header="X-Mesh-Secret", secret=SECRET)
    middleware = WSGIMiddleware(app, trusted_peers=peers, **telemetry.options())
    call(middleware, "10.1.2.3")
    call(middleware, "192.0.2.1")
    call(middleware, "192.0.2.1", SECRET)
    call(middleware, "not-an-address")
    trusted = [rid == "client-chosen-id" and left is not None for rid, left in seen]
    assert trusted == [True, False, True, False]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"trusted_peers": "everyone"}, "everyone"),
        ({"trusted_peers": ["10.0.0.0/8"]}, "10.0.0.0/8"),
        ({"continue_trace": "sometimes"}, "sometimes"),
    ],
)
def test_bad_trust_options_are_named(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        ASGIMiddleware(_recording([]), metrics=False, **options)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"networks": ["10.0.0.300/8"]}, "10.0.0.300/8"),
        ({"networks": "10.0.0.0/8"}, "10.0.0.0/8"),
        ({"header": "X-Secret"}, "header and secret"),
        ({"header": "X-Secret", "secret": "short"}, "16 characters"),
        ({"header": "bad header", "secret": SECRET}, "bad header"),
        ({}, "networks or a header"),
    ],
)
def test_bad_trusted_peers_are_named(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        TrustedPeers(**arguments)


def test_the_secret_is_not_in_the_repr() -> None:
    peers = TrustedPeers(networks=["10.0.0.0/8"], header="X-Mesh-Secret", secret=SECRET)
    assert SECRET not in repr(peers)
    assert "10.0.0.0/8" in repr(peers)


async def test_an_untrusted_trace_is_not_continued_by_the_access_log(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    app = ASGIMiddleware(_recording([]), **telemetry.options())
    await _call(app)
    (record,) = [r for r in caplog.records if r.name == "buttress.access"]
    assert record.trace_id != TRACE_ID  # type: ignore[attr-defined]
    assert record.request_id != "client-chosen-id"  # type: ignore[attr-defined]
    assert trace.get_current_span().get_span_context().is_valid is False


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("pricing", True),
        ("PRICING", True),
        ("pricing.", True),
        ("a.svc.cluster.local", True),
        ("svc.cluster.local", False),
        ("10.2.3.4", True),
        ("11.2.3.4", False),
        ("fd00::1", True),
        ("api.example.com", False),
        ("", False),
    ],
)
def test_internal_host_patterns(host: str, internal: bool) -> None:
    hosts = InternalHosts(["pricing", "*.svc.cluster.local", "10.0.0.0/8", "fd00::/8"])
    assert (host in hosts) is internal
    assert host in InternalHosts(["*"])
    assert host not in InternalHosts([])


@pytest.mark.parametrize("pattern", ["", "a b", "http://x", "a/b", 3])
def test_bad_internal_host_patterns_are_named(pattern: object) -> None:
    with pytest.raises(ConfigurationError, match="internal_hosts"):
        InternalHosts([pattern])  # type: ignore[list-item]


def test_outbound_baggage_is_cut_to_the_w3c_limits() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    provider = TracerProvider()
    context = otel_context.get_current()
    for i in range(100):
        context = baggage.set_baggage(f"k{i}", "v" * 200, context)
    context = baggage.set_baggage("bad key", "x", context)
    token = otel_context.attach(context)
    try:
        for mode in ("internal", "none"):
            transport = ResilientTransport(
                httpx.MockTransport(handler),
                internal_hosts=["api.test"],
                propagate_trace=mode,
                tracer_provider=provider,
            )
            with httpx.Client(transport=transport) as client:
                client.get("http://api.test/")
    finally:
        otel_context.detach(token)
    for request in seen:
        sent = request.headers["baggage"]
        assert len(sent.encode()) <= MAX_BYTES
        assert sent.split(",")[0].startswith("k0=")
        assert "bad" not in sent
    assert "traceparent" in seen[0].headers
    assert "traceparent" not in seen[1].headers  # "none": baggage only


def _timing_out(calls: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectTimeout("timed out", request=request)

    return httpx.MockTransport(handler)


def test_a_deadline_timeout_is_not_the_dependencys_failure() -> None:
    from buttress import CircuitBreaker, CircuitOpen, DeadlineExceeded
    from buttress.deadline import deadline_scope
    from buttress.testing import FakeClock

    clock = FakeClock()
    calls: list[httpx.Request] = []
    made: list[CircuitBreaker] = []

    def breaker(name: str) -> CircuitBreaker:
        made.append(CircuitBreaker(name, consecutive_failures=5, clock=clock))
        return made[-1]

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    transport = ResilientTransport(
        _timing_out(calls),
        breaker=breaker,
        clock=clock,
        retry=retry(on=RETRY_ON, attempts=3, clock=clock, sleep=clock.sleep),
        tracer_provider=provider,
        metrics_registry=registry,
    )
    with httpx.Client(transport=transport, timeout=5.0) as client:
        for _ in range(20):
            # The budget (0.5 s) is shorter than the client's timeout (5 s): it cut the
            # attempt, so the caller ran out of time, not the dependency.
            with deadline_scope(0.5, clock=clock), pytest.raises(DeadlineExceeded):
                client.get("http://api.test/")
        after_deadlines = made[0].state
        assert len(calls) == 20  # never retried, although ConnectTimeout is retryable
        # The same timeout with the budget not binding is the dependency's: it counts
        # (and is retried): five of them open the breaker.
        for _ in range(2):
            with pytest.raises((httpx.ConnectTimeout, CircuitOpen)):
                client.get("http://api.test/")
        assert len(calls) == 25
        assert (after_deadlines, made[0].state) == ("closed", "open")
    causes = [
        dict(span.attributes or {}).get(names.ATTR_TIMEOUT_CAUSE)
        for span in exporter.get_finished_spans()
    ]
    assert causes == ["deadline"] * 20 + ["dependency"] * 5
    cut = {names.LABEL_SERVER_ADDRESS: "api.test", names.LABEL_REASON: names.DEADLINE_CUT}
    assert registry.get_sample_value(names.HTTP_CLIENT_DEADLINE_EXCEEDED, cut) == 20
    failed = {
        names.LABEL_METHOD: "GET",
        names.LABEL_SERVER_ADDRESS: "api.test",
        names.LABEL_STATUS: "",
    }
    # Only the dependency's own timeouts are in the client duration histogram.
    assert registry.get_sample_value(f"{names.HTTP_CLIENT_DURATION}_count", failed) == 5


def test_an_io_error_once_the_budget_ran_out_is_the_budgets() -> None:
    from buttress import CircuitBreaker, DeadlineExceeded
    from buttress.deadline import deadline_scope
    from buttress.testing import FakeClock

    clock = FakeClock()
    shared = CircuitBreaker("upstream", consecutive_failures=1, clock=clock)

    def handler(request: httpx.Request) -> httpx.Response:
        clock.advance(1.0)  # the attempt outlived the budget, then the socket failed
        raise httpx.ReadError("resource temporarily unavailable", request=request)

    transport = ResilientTransport(
        httpx.MockTransport(handler), breaker=shared, retry=None, clock=clock
    )
    with httpx.Client(transport=transport) as client:
        with deadline_scope(0.5, clock=clock), pytest.raises(DeadlineExceeded):
            client.get("http://api.test/")
        after_budget = shared.state
        with pytest.raises(httpx.ReadError):  # no deadline: the upstream's failure
            client.get("http://api.test/")
    assert (after_budget, shared.state) == ("closed", "open")
