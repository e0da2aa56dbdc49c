"""Hostile input, generated: nothing from the client breaks the middleware, leaks into a
header unsafely, or grows the number of metric series."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from buttress.middleware import ASGIMiddleware, WSGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi, response_header

SAFE_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")

ids = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=10_000, max_size=10_240),
    st.text(max_size=64).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"ok\r\nSet-Cookie: x=1", b"a\x00b", b"\xff\xfe", "é".encode(), b" "]),
)
traceparents = st.one_of(
    st.binary(max_size=80),
    st.from_regex(r"\A[0-9a-f]{2}-[0-9a-fx]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z"),
    st.sampled_from([b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b"zz" * 40]),
).map(lambda v: v if isinstance(v, bytes) else v.encode())
paths = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=0, max_size=40).map(
    lambda p: "/" + p
)


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("item")


def make_app(telemetry: Telemetry) -> Any:
    app = Starlette(routes=[Route("/items/{item_id}", item)])
    return ASGIMiddleware(app, **telemetry.options())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request_id=ids, traceparent=traceparents, path=paths, agent=st.binary(max_size=300))
def test_asgi_survives_hostile_headers_and_paths(
    telemetry: Telemetry, request_id: bytes, traceparent: bytes, path: str, agent: bytes
) -> None:
    app = make_app(telemetry)  # a new shell on the same registry shares its instruments
    headers = [
        (b"x-request-id", request_id),
        (b"traceparent", traceparent),
        (b"user-agent", agent),
        (b"host", agent[:40] or b"x"),
    ]
    sent = asyncio.run(call_asgi(app, path, headers=headers, query=agent[:50]))
    start = sent[0]
    assert start["status"] in (200, 404)
    echoed = response_header(sent, b"x-request-id")
    assert echoed is not None
    assert SAFE_ID.fullmatch(echoed)
    if not SAFE_ID.fullmatch(request_id):
        assert echoed != request_id
    routes = {dict(labels)["http_route"] for labels in telemetry.series()}
    assert routes <= {"/items/{item_id}", names.ROUTE_UNMATCHED}


def test_thousands_of_random_paths_keep_the_series_bounded(telemetry: Telemetry) -> None:
    app = make_app(telemetry)
    rng = random.Random(7)

    async def main() -> None:
        for i in range(3000):
            word = "".join(rng.choice("abcdefghij/%.-_~") for _ in range(rng.randint(1, 30)))
            path = f"/items/{word}" if i % 3 == 0 else f"/{word}"
            method = rng.choice(["GET", "POST", "BREW", "get", "X" * 50])
            await call_asgi(app, path, method=method)

    asyncio.run(main())
    series = telemetry.series()
    routes = {dict(labels)["http_route"] for labels in series}
    methods = {dict(labels)["http_request_method"] for labels in series}
    assert routes <= {"/items/{item_id}", names.ROUTE_UNMATCHED}
    assert methods <= {"GET", "POST", names.METHOD_OTHER}
    assert len(series) <= 2 * 3 * 3  # routes x methods x statuses (200, 404, 405)
    total = sum(
        telemetry.registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", dict(labels))
        or 0
        for labels in series
    )
    assert total == 3000


@settings(max_examples=150, deadline=None)
@given(request_id=ids, traceparent=traceparents, path=paths)
def test_wsgi_survives_hostile_headers(request_id: bytes, traceparent: bytes, path: str) -> None:
    from prometheus_client import CollectorRegistry

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = WSGIMiddleware(app, metrics_registry=CollectorRegistry())
    captured: list[list[tuple[str, str]]] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": request_id[:30].decode("latin-1"),
        "HTTP_X_REQUEST_ID": request_id.decode("latin-1"),
        "HTTP_TRACEPARENT": traceparent.decode("latin-1"),
        "HTTP_HOST": request_id[:40].decode("latin-1"),
        "SERVER_PORT": "8000",
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        captured.append(headers)
        return lambda data: None

    body = middleware(environ, start_response)
    assert b"".join(body) == b"ok"
    body.close()  # type: ignore[attr-defined]
    (value,) = [v for k, v in captured[0] if k.lower() == "x-request-id"]
    assert SAFE_ID.fullmatch(value.encode("latin-1"))
