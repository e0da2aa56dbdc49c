"""Websocket connections through the ASGI middleware, on a real uvicorn and hypercorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from buttress.middleware import ASGIMiddleware, TrustedPeers
from buttress.telemetry import _names as names

from ._support import Telemetry, eventually, serve_asgi, serve_hypercorn


class Broken(RuntimeError):
    pass


def app(telemetry: Telemetry, trusted: bool = True) -> Any:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    await websocket.close(code=4000)
                    return
                if text == "fail":
                    raise Broken("in the handler")
                await websocket.send_text(text.upper())
                await websocket.send_text(text.lower())
        except WebSocketDisconnect:
            pass

    async def closed(websocket: WebSocket) -> None:
        await websocket.close(code=1008)  # refused before accepting

    starlette = Starlette(
        routes=[WebSocketRoute("/rooms/{room}", echo), WebSocketRoute("/closed", closed)]
    )
    # The tests' client is the trusted peer 127.0.0.1, unless a test says otherwise.
    peers = TrustedPeers(networks=["127.0.0.1/32"]) if trusted else None
    starlette.add_middleware(
        ASGIMiddleware, service="chat", **telemetry.options(trusted_peers=peers)
    )
    return starlette


SERVERS: dict[str, Callable[[Any], contextlib.AbstractContextManager[str]]] = {
    "uvicorn": serve_asgi,
    "hypercorn": serve_hypercorn,
}


@pytest.fixture(params=sorted(SERVERS))
def ws_url(request: pytest.FixtureRequest, telemetry: Telemetry) -> Iterator[str]:
    with SERVERS[request.param](app(telemetry)) as url:
        yield url.replace("http://", "ws://")


def _value(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


def _line(caplog: pytest.LogCaptureFixture) -> Any:
    def lines() -> list[Any]:
        return [
            r
            for r in caplog.records
            if r.name == "buttress.access" and r.msg == "websocket.connection"
        ]

    assert eventually(lambda: len(lines()) == 1)
    return lines()[0]


def test_a_session_has_an_id_a_span_metrics_and_a_line(
    ws_url: str, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    route = "/rooms/{room}"
    with connect(f"{ws_url}/rooms/7", additional_headers={"X-Request-ID": "ws-1"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == "ws-1"  # on the handshake
        ws.send("Hi")
        assert [ws.recv(), ws.recv()] == ["HI", "hi"]
        assert _value(telemetry, names.WEBSOCKET_ACTIVE, http_route=route) == 1
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert eventually(lambda: len(telemetry.spans()) == 1)
    (span,) = telemetry.spans()
    assert span.name == f"WS {route}"
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.route"] == route
    assert span.attributes["buttress.request_id"] == "ws-1"
    assert span.attributes["buttress.websocket.close_code"] == 4000
    assert span.attributes["buttress.websocket.messages_received"] == 2
    assert span.attributes["buttress.websocket.messages_sent"] == 2
    assert "error.type" not in span.attributes
    assert _value(telemetry, names.WEBSOCKET_ACTIVE, http_route=route) == 0
    count = f"{names.WEBSOCKET_DURATION}_count"
    assert _value(telemetry, count, http_route=route) == 1
    messages = names.WEBSOCKET_MESSAGES
    assert _value(telemetry, messages, http_route=route, direction="received") == 2
    assert _value(telemetry, messages, http_route=route, direction="sent") == 2
    line = _line(caplog)
    assert (line.route, line.close_code, line.request_id, line.service) == (
        route,
        4000,
        "ws-1",
        "chat",
    )
    assert line.trace_id == format(span.context.trace_id, "032x")


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_an_untrusted_client_neither_names_the_session_nor_steers_its_trace(
    server: str, telemetry: Telemetry
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with SERVERS[server](app(telemetry, trusted=False)) as url:
        headers = {"X-Request-ID": "chosen-by-client", "traceparent": parent}
        with connect(
            f"{url.replace('http://', 'ws://')}/rooms/7", additional_headers=headers
        ) as ws:
            assert ws.response is not None
            given = ws.response.headers["x-request-id"]
            ws.send("bye")
            with pytest.raises(ConnectionClosed):
                ws.recv()
        assert eventually(lambda: len(telemetry.spans()) == 1)
    (span,) = telemetry.spans()
    assert span.context is not None
    assert given != "chosen-by-client"
    assert given == format(span.context.trace_id, "032x")  # the new trace's id serves
    assert span.context.trace_id != 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is None
    # The client's trace is linked, so it can still be found.
    assert [link.context.trace_id for link in span.links] == [0x0AF7651916CD43DD8448EB211C80319C]


def test_a_client_that_closes_and_a_handler_that_fails(
    ws_url: str, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    with connect(f"{ws_url}/rooms/1") as ws:
        ws.close(code=1001)
    with connect(f"{ws_url}/rooms/2") as ws:
        ws.send("fail")
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert eventually(lambda: len(telemetry.spans()) == 2)
    closed, failed = sorted(
        telemetry.spans(), key=lambda s: str(dict(s.attributes or {})["url.path"])
    )
    assert closed.attributes is not None
    assert failed.attributes is not None
    # The code the server reports: uvicorn passes the client's on, hypercorn says 1006.
    assert closed.attributes["buttress.websocket.close_code"] in (1001, 1006)
    assert closed.status.status_code is StatusCode.UNSET
    assert failed.attributes["error.type"] == f"{__name__}.Broken"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_a_refused_handshake(ws_url: str, telemetry: Telemetry) -> None:
    with pytest.raises(Exception), connect(f"{ws_url}/closed"):  # noqa: B017
        pass
    assert eventually(lambda: len(telemetry.spans()) == 1)
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == names.ERROR_HANDSHAKE_REJECTED
    assert _value(telemetry, f"{names.WEBSOCKET_DURATION}_count", http_route="/closed") == 0
