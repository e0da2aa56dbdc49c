"""HTTPFaults: error responses and latency for a share of requests, ASGI and WSGI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from buttress import ConfigurationError, FaultInjection
from buttress.events import FaultInjected
from buttress.middleware import ASGIMiddleware, HTTPFaults, WSGIMiddleware
from buttress.middleware._faults import check_faults
from buttress.telemetry import _names as names
from buttress.testing import FakeClock, capture_events

from ._support import Telemetry, serve_asgi

SECRET = "s3cret-value-for-chaos"


class ASGIApp:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def asgi_request(
    app: Any, headers: list[tuple[bytes, bytes]] | None = None, kind: str = "http"
) -> tuple[int | None, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": kind, "method": "GET", "path": "/", "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["calls"] = environ.get("calls", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


def wsgi_request(app: Any, environ: dict[str, Any] | None = None) -> tuple[str, bytes, int]:
    environ = dict(environ or {})
    started: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append(status)
        return lambda data: None

    iterable = app(environ, start_response)
    body = b"".join(iterable)
    close = getattr(iterable, "close", None)
    if close is not None:  # as a WSGI server does: the middleware finishes the request here
        close()
    return started[0], body, environ.get("calls", 0)


def test_disabled_by_default_passes_every_request_through() -> None:
    inner = ASGIApp()
    faults = HTTPFaults(rate=1.0)
    app = faults.wrap_asgi(inner)
    assert asgi_request(app) == (200, b"app")
    assert inner.calls == 1
    assert not faults.enabled
    assert wsgi_request(faults.wrap_wsgi(wsgi_app)) == ("200 OK", b"app", 1)


def test_enabled_answers_the_status_without_calling_the_app() -> None:
    inner = ASGIApp()
    faults = HTTPFaults("edge", rate=1.0, status=503, enabled=True)
    with capture_events() as events:
        status, body = asgi_request(faults.wrap_asgi(inner))
        wsgi_status, wsgi_body, calls = wsgi_request(faults.wrap_wsgi(wsgi_app))
    assert (status, body) == (503, b"fault injected on purpose")
    assert inner.calls == 0
    assert (wsgi_status, wsgi_body, calls) == ("503 Service Unavailable", body, 0)
    assert events == [FaultInjected("edge", "result")] * 2


def test_rate_and_runtime_switches() -> None:
    draws = iter([0.1, 0.6, 0.1, 0.6])
    faults = HTTPFaults(rate=0.5, status=500, random=lambda: next(draws))
    app = faults.wrap_asgi(ASGIApp())
    assert asgi_request(app)[0] == 200  # disabled: no draw taken
    faults.enable()
    assert [asgi_request(app)[0] for _ in range(2)] == [500, 200]
    faults.set_rate(0.05)
    assert faults.rate == 0.05
    assert asgi_request(app)[0] == 200  # 0.1 >= 0.05
    faults.disable()
    assert asgi_request(app)[0] == 200
    faults.enable(rate=1.0)
    assert asgi_request(app)[0] == 500


def test_latency_only_delays_then_calls_the_app() -> None:
    clock = FakeClock(0.0)
    faults = HTTPFaults(
        "slow", status=None, latency=0.75, rate=1.0, enabled=True, sleep=clock.async_sleep
    )
    inner = ASGIApp()
    with capture_events() as events:
        assert asgi_request(faults.wrap_asgi(inner)) == (200, b"app")
    assert clock.sleeps == [0.75]
    assert inner.calls == 1
    assert events == [FaultInjected("slow", "latency")]
    sync = HTTPFaults(status=None, latency=0.5, rate=1.0, enabled=True, sleep=clock.sleep)
    assert wsgi_request(sync.wrap_wsgi(wsgi_app)) == ("200 OK", b"app", 1)
    assert clock.sleeps == [0.75, 0.5]


def test_latency_then_status() -> None:
    clock = FakeClock(0.0)
    faults = HTTPFaults(status=504, latency=2, rate=1.0, enabled=True, sleep=clock.sleep)
    with capture_events() as events:
        assert asgi_request(faults.wrap_asgi(ASGIApp()))[0] == 504
    assert clock.sleeps == [2.0]
    assert [e.kind for e in events if isinstance(e, FaultInjected)] == ["latency", "result"]


def test_header_triggers_only_with_the_exact_secret() -> None:
    faults = HTTPFaults(header="X-Chaos", secret=SECRET)  # disabled: only the header works
    app = faults.wrap_asgi(ASGIApp())
    assert asgi_request(app, [(b"x-chaos", SECRET.encode())])[0] == 503
    assert asgi_request(app, [(b"x-chaos", b"guess")])[0] == 200
    assert asgi_request(app, [(b"x-chaos", SECRET.encode() + b"x")])[0] == 200
    assert asgi_request(app, [(b"x-other", SECRET.encode())])[0] == 200
    assert asgi_request(app)[0] == 200
    wsgi = faults.wrap_wsgi(wsgi_app)
    assert wsgi_request(wsgi, {"HTTP_X_CHAOS": SECRET})[0].startswith("503")
    assert wsgi_request(wsgi, {"HTTP_X_CHAOS": "guess"})[0] == "200 OK"
    assert wsgi_request(wsgi)[0] == "200 OK"


def test_no_header_turns_faults_on_unless_configured() -> None:
    faults = HTTPFaults()
    app = faults.wrap_asgi(ASGIApp())
    for name in (b"x-chaos", b"x-buttress-fault", b"x-fault"):
        assert asgi_request(app, [(name, SECRET.encode())])[0] == 200


def test_other_scopes_pass_through() -> None:
    inner = ASGIApp()
    faults = HTTPFaults(rate=1.0, enabled=True)
    asgi_request(faults.wrap_asgi(inner), kind="websocket")
    assert inner.calls == 1


def test_repr_and_properties() -> None:
    faults = HTTPFaults("edge", rate=0.2, latency=1, header="X-Chaos", secret=SECRET)
    assert repr(faults) == (
        "HTTPFaults('edge', rate=0.2, status=503, latency=1.0, header trigger, disabled)"
    )
    assert SECRET not in repr(faults)
    assert faults.name == "edge"
    assert faults.latency == 1.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"status": 600}, "600"),
        ({"status": True}, "True"),
        ({"status": None}, "injects nothing"),
        ({"rate": 2}, "2"),
        ({"latency": -1}, "-1"),
        ({"header": "X-Chaos"}, "go together"),
        ({"secret": SECRET}, "go together"),
        ({"header": "X Chaos", "secret": SECRET}, "X Chaos"),
        ({"header": "X-Chaos", "secret": "short"}, "16"),
    ],
)
def test_bad_arguments_name_the_bad_value(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        HTTPFaults(**kwargs)


def test_check_faults() -> None:
    faults = HTTPFaults()
    assert check_faults(faults) is faults
    assert check_faults(None) is None
    with pytest.raises(ConfigurationError, match=r"0\.5"):
        check_faults(0.5)


# -- wired into the middleware: injected responses are observed like real ones ---------


def test_asgi_middleware_measures_injected_responses(telemetry: Telemetry) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def user(request: Any) -> PlainTextResponse:
        return PlainTextResponse("user")

    inner = Starlette(routes=[Mount("/api", routes=[Route("/users/{id}", user)])])
    faults = HTTPFaults("edge", rate=1.0, header="X-Chaos", secret=SECRET)
    app = ASGIMiddleware(inner, faults=faults, **telemetry.options())
    with serve_asgi(app, lifespan="off") as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/users/1").status_code == 200
        faulted = client.get("/api/users/2", headers={"X-Chaos": SECRET})
        assert faulted.status_code == 503
        assert faulted.headers["x-request-id"]  # the observer still answers with the id
        faults.enable()
        assert client.get("/api/users/3").status_code == 503
        faults.disable()
        assert client.get("/api/users/4").status_code == 200
    # Routing still labels real requests through the mount; injected ones never routed.
    ok = {"http_request_method": "GET", "http_response_status_code": "200"}
    assert telemetry.count(**ok, http_route="/api/users/{id}") == 2
    injected = {"http_request_method": "GET", "http_response_status_code": "503"}
    assert telemetry.count(**injected, http_route=names.ROUTE_UNMATCHED, error_type="503") == 2
    spans = telemetry.spans()
    statuses = [(s.attributes or {}).get("http.response.status_code") for s in spans]
    assert statuses == [200, 503, 503, 200]


def test_wsgi_middleware_measures_injected_responses(telemetry: Telemetry) -> None:
    faults = HTTPFaults("edge", rate=1.0, status=500, enabled=True)
    app = WSGIMiddleware(wsgi_app, faults=faults, **telemetry.options())
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
    }
    status, _, calls = wsgi_request(app, environ)
    assert (status, calls) == ("500 Internal Server Error", 0)
    labels = {"http_request_method": "GET", "http_response_status_code": "500", "error_type": "500"}
    assert telemetry.count(**labels, http_route=names.ROUTE_UNMATCHED) == 1


def test_middleware_refuses_other_faults() -> None:
    with pytest.raises(ConfigurationError, match="FaultInjection"):
        ASGIMiddleware(ASGIApp(), faults=FaultInjection("x", result=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'yes'"):
        WSGIMiddleware(wsgi_app, faults="yes")  # type: ignore[arg-type]
