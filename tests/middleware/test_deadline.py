"""Deadline propagation: the middleware binds the caller's remaining budget for the request.

In-process checks of each shell, then a chain of real services on 127.0.0.1: A (ASGI
under uvicorn) calls B (WSGI under wsgiref) through the async transport under
``buttress.timeout``; B calls C (the test upstream) through the sync transport. C must
receive a budget no larger than the one B received, and a spent budget stops B's call.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import buttress
from buttress import TimedOut
from buttress._deadline_header import parse_deadline
from buttress.deadline import current_deadline, deadline_scope, remaining
from buttress.httpx import AsyncResilientTransport, ResilientTransport
from buttress.middleware import ASGIMiddleware, WSGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi, serve_asgi, serve_wsgi
from ._upstream import Upstream

HEADER = names.DEADLINE_HEADER.lower().encode()


def _recording_asgi(seen: list[float | None]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(remaining())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_asgi_binds_the_header_for_the_request_and_resets_it(telemetry: Telemetry) -> None:
    seen: list[float | None] = []
    app = ASGIMiddleware(_recording_asgi(seen), **telemetry.options(trusted_peers="any"))
    await call_asgi(app, "/", headers=[(HEADER, b"1.500")])
    await call_asgi(app, "/")
    left, absent = seen
    assert left is not None
    assert 0 < left <= 1.5
    assert absent is None
    assert current_deadline() is None  # reset after the request


@pytest.mark.parametrize("value", [b"-1", b"1e3", b"inf", b"nan", b"soon", b"", b"1.5s"])
async def test_a_malformed_header_is_ignored(telemetry: Telemetry, value: bytes) -> None:
    seen: list[float | None] = []
    app = ASGIMiddleware(_recording_asgi(seen), **telemetry.options(trusted_peers="any"))
    await call_asgi(app, "/", headers=[(HEADER, value)])
    assert seen == [None]


async def test_the_header_can_be_renamed_or_switched_off(telemetry: Telemetry) -> None:
    seen: list[float | None] = []
    off = ASGIMiddleware(
        _recording_asgi(seen), **telemetry.options(trusted_peers="any", deadline_header=None)
    )
    await call_asgi(off, "/", headers=[(HEADER, b"2")])
    renamed = ASGIMiddleware(
        _recording_asgi(seen), **telemetry.options(trusted_peers="any", deadline_header="X-Budget")
    )
    await call_asgi(renamed, "/", headers=[(HEADER, b"2")])
    await call_asgi(renamed, "/", headers=[(b"x-budget", b"2")])
    assert seen[:2] == [None, None]
    assert seen[2] is not None
    assert 0 < seen[2] <= 2


async def test_an_enclosing_earlier_deadline_wins(telemetry: Telemetry) -> None:
    seen: list[float | None] = []
    app = ASGIMiddleware(_recording_asgi(seen), **telemetry.options(trusted_peers="any"))
    with deadline_scope(0.5) as outer:
        await call_asgi(app, "/", headers=[(HEADER, b"60")])
        assert current_deadline() == outer
    assert seen[0] is not None
    assert seen[0] <= 0.5


async def test_a_spent_budget_refuses_calls_in_the_handler(telemetry: Telemetry) -> None:
    outcomes: list[str] = []
    ran: list[bool] = []

    @buttress.timeout(5.0)
    async def downstream() -> None:
        ran.append(True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await downstream()
            outcomes.append("sent")
        except TimedOut:
            outcomes.append("refused")
        await send({"type": "http.response.start", "status": 504, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ASGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    await call_asgi(wrapped, "/", headers=[(HEADER, b"0.000")])
    assert outcomes == ["refused"]
    assert ran == []


@pytest.mark.parametrize("option", ["", "X Budget", "Frist\u00e9", 3])
def test_a_bad_header_name_is_refused(option: Any) -> None:
    with pytest.raises(buttress.ConfigurationError, match="deadline_header"):
        ASGIMiddleware(_recording_asgi([]), deadline_header=option, metrics=False)


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return lambda data: None


def test_wsgi_binds_the_header_while_the_app_runs(telemetry: Telemetry) -> None:
    seen: list[float | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(remaining())
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = WSGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    for extra in ({"HTTP_X_BUTTRESS_DEADLINE": "0.750"}, {}):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", **extra}
        body = wrapped(environ, _start_response)
        list(body)
        body.close()  # type: ignore[attr-defined]
    left, absent = seen
    assert left is not None
    assert 0 < left <= 0.75
    assert absent is None
    assert current_deadline() is None


# --- a chain of real services ------------------------------------------------------------


def _service_b(upstream: str, telemetry: Telemetry) -> Any:
    """B: reports the budget it was given and calls C with what is left."""
    metrics = CollectorRegistry()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received = environ.get("HTTP_X_BUTTRESS_DEADLINE")
        left = remaining()
        transport = ResilientTransport(
            metrics_registry=metrics, retry=None, internal_hosts=["127.0.0.1"]
        )
        with httpx.Client(transport=transport, base_url=upstream) as client:
            try:
                outcome = str(client.get("/ok").status_code)
            except TimedOut:
                outcome = "TimedOut"
        body = json.dumps({"received": received, "left": left, "outcome": outcome}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return WSGIMiddleware(app, **telemetry.options(trusted_peers="any", service="b"))


def _service_a(b_url: str, telemetry: Telemetry) -> Any:
    """A: calls B through the async transport under a 5 s timeout."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    transport = AsyncResilientTransport(
        metrics_registry=CollectorRegistry(), retry=None, internal_hosts=["127.0.0.1"]
    )

    @buttress.timeout(5.0)
    async def call_b() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url=b_url) as client:
            return await client.get("/chain")

    async def chain(request: Request) -> Response:
        answer = await call_b()
        return Response(answer.content, media_type="application/json")

    app = Starlette(routes=[Route("/chain", chain)])
    return ASGIMiddleware(app, **telemetry.options(trusted_peers="any", service="a"))


def test_a_chain_of_services_shares_one_budget(telemetry: Telemetry) -> None:
    with (
        Upstream() as c,
        serve_wsgi(_service_b(c.url, telemetry)) as b_url,
        serve_asgi(_service_a(b_url, telemetry)) as a_url,
    ):
        answer = httpx.get(f"{a_url}/chain", timeout=10).json()
        # A client whose budget is already spent: B must not call C at all.
        spent = httpx.get(
            f"{b_url}/chain", headers={names.DEADLINE_HEADER: "0.000"}, timeout=10
        ).json()
        hits_after = c.hits("/ok")

    received = parse_deadline(answer["received"])
    assert received is not None
    assert 0 < received <= 5.0  # A's timeout, less what A spent before sending
    assert answer["left"] is not None
    assert 0 < answer["left"] <= received  # bound in B's handler
    assert answer["outcome"] == "200"
    sent_to_c = [s for s in c.seen if s.path == "/ok"]
    assert len(sent_to_c) == 1 == hits_after
    forwarded = parse_deadline(sent_to_c[0].headers[HEADER.decode()])
    assert forwarded is not None
    assert 0 < forwarded <= received  # C got what was left of the same budget
    assert spent == {"received": "0.000", "left": spent["left"], "outcome": "TimedOut"}
    assert spent["left"] <= 0
