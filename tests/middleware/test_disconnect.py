"""What a request that did not end well records, on real ASGI servers (uvicorn, hypercorn).

An exception before and after the first body chunk, a client that leaves before and while
the body is sent: the span, the metric labels and the access line each say what happened,
whether or not the app reads ``receive()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from buttress.middleware import ASGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, eventually, serve_asgi, serve_hypercorn

CHUNK = b"x" * 1024


class Broken(RuntimeError):
    pass


def app(telemetry: Telemetry, release: asyncio.Event | None = None) -> Any:
    async def slow(request: Request) -> Response:
        # Never reads receive(): only the middleware can notice the client leaving.
        for _ in range(200):  # at most 2 s
            await asyncio.sleep(0.01)
        return PlainTextResponse("late")

    async def big(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield CHUNK
                await asyncio.sleep(0.02)

        return StreamingResponse(body())

    async def half(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield CHUNK
            raise Broken("after the first chunk")

        return StreamingResponse(body())

    async def boom(request: Request) -> Response:
        raise Broken("before any response")

    starlette = Starlette(
        routes=[
            Route("/slow", slow),
            Route("/big", big),
            Route("/half", half),
            Route("/boom", boom),
        ]
    )
    starlette.add_middleware(ASGIMiddleware, **telemetry.options())
    return starlette


SERVERS: dict[str, Callable[[Any], contextlib.AbstractContextManager[str]]] = {
    "uvicorn": serve_asgi,
    "hypercorn": serve_hypercorn,
}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, telemetry: Telemetry) -> Iterator[str]:
    with SERVERS[request.param](app(telemetry)) as url:
        yield url


def _raw(url: str, path: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def _span(telemetry: Telemetry, name: str) -> Any:
    assert eventually(lambda: any(s.name == name for s in telemetry.spans()))
    (span,) = [s for s in telemetry.spans() if s.name == name]
    return span


def _access(caplog: pytest.LogCaptureFixture, route: str) -> Any:
    def lines() -> list[Any]:
        return [
            r
            for r in caplog.records
            if r.name == "buttress.access" and getattr(r, "route", None) == route
        ]

    assert eventually(lambda: len(lines()) == 1)
    return lines()[0]


def test_a_client_that_leaves_before_the_response_is_499(
    server: str, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    sock = _raw(server, "/slow")
    sock.close()  # gave up before the handler answered
    span = _span(telemetry, "GET /slow")
    assert span.attributes["error.type"] == names.ERROR_CLIENT_DISCONNECT
    assert "http.response.status_code" not in span.attributes
    assert (span.end_time - span.start_time) / 1e9 < 1.5  # recorded when the client left
    labels = {
        "http_request_method": "GET",
        "http_route": "/slow",
        "http_response_status_code": names.STATUS_CLIENT_CLOSED,
        "error_type": names.ERROR_CLIENT_DISCONNECT,
    }
    assert telemetry.count(**labels) == 1
    line = _access(caplog, "/slow")
    assert (line.status, line.disconnected, line.error_type) == (
        499,
        True,
        names.ERROR_CLIENT_DISCONNECT,
    )


def test_a_stream_cut_by_the_client_is_a_disconnect_not_a_success(
    server: str, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    sock = _raw(server, "/big")
    received = b""
    while len(received) < 2048:
        received += sock.recv(4096)
    sock.close()  # after about 1 kB of the body's 50
    span = _span(telemetry, "GET /big")
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["error.type"] == names.ERROR_CLIENT_DISCONNECT
    labels = {
        "http_request_method": "GET",
        "http_route": "/big",
        "http_response_status_code": "200",
        "error_type": names.ERROR_CLIENT_DISCONNECT,
    }
    assert telemetry.count(**labels) == 1
    line = _access(caplog, "/big")
    assert line.error_type == names.ERROR_CLIENT_DISCONNECT
    assert line.response_size < 50 * len(CHUNK)


@pytest.mark.parametrize(("path", "status"), [("/boom", 500), ("/half", 200)])
def test_an_exception_before_or_after_the_first_chunk_is_an_error(
    server: str,
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
    path: str,
    status: int,
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    with contextlib.closing(_raw(server, path)) as sock, contextlib.suppress(OSError):
        while sock.recv(4096):
            pass
    span = _span(telemetry, f"GET {path}")
    error_type = f"{__name__}.Broken"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error_type
    assert span.attributes["http.response.status_code"] == status
    assert [e.name for e in span.events] == ["exception"]
    labels = {
        "http_request_method": "GET",
        "http_route": path,
        "http_response_status_code": str(status),
        "error_type": error_type,
    }
    assert telemetry.count(**labels) == 1
    assert _access(caplog, path).error_type == error_type


async def test_a_server_that_repeats_the_body_does_not_make_the_watch_spin(
    telemetry: Telemetry,
) -> None:
    # Against ASGI, this receive() never waits for the disconnect: the watch must stop
    # reading ahead instead of looping (or buffering) forever, and the request is a 200.
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)  # lets the watch run
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await asyncio.wait_for(ASGIMiddleware(endpoint, **telemetry.options())(scope, receive, send), 5)
    assert sent[0]["status"] == 200
    labels = {"http_request_method": "GET", "http_route": names.ROUTE_UNMATCHED}
    assert telemetry.count(**labels, http_response_status_code="200") == 1
