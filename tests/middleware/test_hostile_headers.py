"""Arbitrary header names, values and sizes at the ASGI, WSGI and Django shells.

Whatever a client sends, and whether or not it is trusted: no 500 from us, the echoed
request id is always safe (and never an unsafe value the client chose), no response
header carries a control character, and the metric series stay bounded.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from buttress._http import KNOWN_METHODS
from buttress.middleware import ASGIMiddleware, TrustedPeers, WSGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi

SAFE_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
SECRET = "the-peers-shared-secret"
# Names the middleware reads, so that generated values reach the code that parses them.
READ = [
    b"x-request-id", b"traceparent", b"tracestate", b"baggage", b"x-buttress-deadline",
    b"host", b"user-agent", b"authorization", b"accept", b"x-mesh-secret", b"cookie",
]  # fmt: skip
header_names = st.one_of(st.sampled_from(READ), st.binary(min_size=1, max_size=40))
header_values = st.one_of(
    st.binary(max_size=200),
    st.binary(min_size=8_000, max_size=16_500),  # past every bound we keep
    st.sampled_from(
        [b"0.000", b"1e9", b"-1", b"99999999999999", b"a\r\nSet-Cookie: x=1", b"\xff" * 64,
         SECRET.encode(), b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01",
         b",".join(b"k%d=v" % i for i in range(500)), b"=" * 300]
    ),
)  # fmt: skip
header_lists = st.lists(st.tuples(header_names, header_values), max_size=12)
trust = st.sampled_from([None, "any", TrustedPeers(header="X-Mesh-Secret", secret=SECRET)])
HYPOTHESIS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check_response(
    status: int, headers: list[tuple[bytes, bytes]], sent: list[tuple[bytes, bytes]]
) -> None:
    assert status != 500
    ids = [v for k, v in headers if k.lower() == b"x-request-id"]
    assert len(ids) == 1
    assert SAFE_ID.fullmatch(ids[0])
    for key, value in headers:
        assert not CONTROL.search(key + value)
    for name, value in sent:
        if name.lower() == b"x-request-id" and not SAFE_ID.fullmatch(value.strip()):
            assert ids[0] != value


def _check_series(registry: CollectorRegistry) -> None:
    for family in registry.collect():
        for sample in family.samples:
            if sample.name != f"{names.HTTP_SERVER_DURATION}_count":
                continue
            labels = sample.labels
            assert labels["http_request_method"] in KNOWN_METHODS | {names.METHOD_OTHER}
            status = labels["http_response_status_code"]
            assert status == names.STATUS_OTHER or 100 <= int(status) <= 599
            assert labels["http_route"] in {"/items/{item_id}", names.ROUTE_UNMATCHED, "/"}


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@HYPOTHESIS
@given(headers=header_lists, peers=trust)
def test_asgi(telemetry: Telemetry, headers: list[tuple[bytes, bytes]], peers: Any) -> None:
    telemetry.exporter.clear()
    app = ASGIMiddleware(
        _asgi_app,
        trusted_peers=peers,
        capture_headers=["cookie", "x-mesh-secret"],
        **telemetry.options(),
    )
    sent = asyncio.run(call_asgi(app, "/", headers=[(k.lower(), v) for k, v in headers]))
    start = sent[0]
    _check_response(start["status"], start["headers"], headers)
    _check_series(telemetry.registry)
    for span in telemetry.spans():
        attributes = dict(span.attributes or {})
        assert attributes.get("http.request.header.cookie", ("REDACTED",)) == ("REDACTED",)
        if isinstance(peers, TrustedPeers):  # the secret header is never recorded
            recorded = attributes.get("http.request.header.x-mesh-secret", ("REDACTED",))
            assert recorded == ("REDACTED",)


def _environ(headers: list[tuple[bytes, bytes]], path: str = "/") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        environ[key] = value.decode("latin-1")
    return environ


def _call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]]]:
    answered: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answered.append((status, headers))
        return lambda data: None

    body = app(environ, start_response)
    b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    status, headers = answered[-1]
    return int(status[:3]), [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


@HYPOTHESIS
@given(headers=header_lists, peers=trust)
def test_wsgi(telemetry: Telemetry, headers: list[tuple[bytes, bytes]], peers: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = WSGIMiddleware(app, trusted_peers=peers, **telemetry.options())
    status, answered = _call_wsgi(middleware, _environ(headers))
    _check_response(status, answered, headers)
    _check_series(telemetry.registry)


@HYPOTHESIS
@given(headers=header_lists, pk=st.integers(min_value=0, max_value=10**6))
def test_django(headers: list[tuple[bytes, bytes]], pk: int) -> None:
    from django.core.wsgi import get_wsgi_application

    from . import django_app

    # Django refuses hosts and header values it cannot parse with a 400 of its own:
    # keep the Host header well formed so that requests reach the middleware's paths.
    kept = [(k, v) for k, v in headers if k.lower() != b"host"]
    status, answered = _call_wsgi(get_wsgi_application(), _environ(kept, f"/users/{pk}/"))
    _check_response(status, answered, kept)
    assert status == 200
    # The registry is the Django test app's, shared with the other Django tests: its
    # routes are the app's templates whatever the requests were, never a raw path.
    routes = set()
    for family in django_app.registry.collect():
        for sample in family.samples:
            if sample.name == f"{names.HTTP_SERVER_DURATION}_count":
                routes.add(sample.labels["http_route"])
    assert "/users/<int:pk>/" in routes
    assert f"/users/{pk}/" not in routes
    assert len(routes) <= 20
