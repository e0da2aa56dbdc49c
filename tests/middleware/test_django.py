"""Django behind DjangoMiddleware: its WSGI handler under a real server on 127.0.0.1 (sync
middleware) and its ASGI handler under uvicorn (async middleware)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.trace import StatusCode

from buttress.middleware._routes import regex_template
from buttress.telemetry import _names as names

from . import django_app
from ._support import serve_asgi, serve_wsgi

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _fresh_spans() -> None:
    django_app.exporter.clear()


def count(route: str, status: str, method: str = "GET", error_type: str = "") -> float:
    labels = {
        "http_request_method": method,
        "http_route": route,
        "http_response_status_code": status,
        "error_type": error_type,
    }
    value = django_app.registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", labels)
    return value or 0.0


def test_django_wsgi(caplog: pytest.LogCaptureFixture) -> None:
    from django.core.wsgi import get_wsgi_application

    caplog.set_level("INFO", logger="buttress.access")
    before = count("/users/<int:pk>/", "200")
    with serve_wsgi(get_wsgi_application()) as url, httpx.Client(base_url=url) as client:
        response = client.get(
            "/users/12/?api_key=k3y", headers={"traceparent": TRACEPARENT, "X-Request-ID": "dj-1"}
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "dj-1"
        assert client.get("/api/orders/abc-1").text == "order abc-1"
        boom = client.get("/boom")
        assert boom.status_code == 500
        assert len(boom.headers["x-request-id"]) == 32
        streamed = client.get("/stream")
        assert streamed.text == "row 0\nrow 1\nrow 2\n"
        assert client.get("/nowhere/7").status_code == 404
        metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert count("/users/<int:pk>/", "200") == before + 1
    assert count("/api/orders/<slug:ref>", "200") >= 1
    assert count("/boom", "500", error_type=f"{django_app.__name__}.Kaput") >= 1
    assert count(names.ROUTE_UNMATCHED, "404") >= 1
    assert metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert 'http_route="/users/<int:pk>/"' in metrics.text

    spans = {s.name: s for s in django_app.exporter.get_finished_spans()}
    user = spans["GET /users/<int:pk>/"]
    assert format(user.context.trace_id, "032x") == TRACE_ID
    assert user.attributes is not None
    assert user.attributes["url.query"] == "api_key=REDACTED"
    assert user.attributes["http.route"] == "/users/<int:pk>/"
    assert user.attributes["buttress.request_id"] == "dj-1"
    failed = spans["GET /boom"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == f"{django_app.__name__}.Kaput"
    assert failed.attributes["http.response.status_code"] == 500
    size = django_app.registry.get_sample_value(
        f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum",
        {
            "http_request_method": "GET",
            "http_route": "/stream",
            "http_response_status_code": "200",
            "error_type": "",
        },
    )
    assert size is not None
    assert size >= len(streamed.content)

    lines = [r.__dict__ for r in caplog.records if r.name == "buttress.access"]
    mine = [line for line in lines if line["request_id"] == "dj-1"]
    assert len(mine) == 1
    assert (mine[0]["route"], mine[0]["status"], mine[0]["trace_id"]) == (
        "/users/<int:pk>/",
        200,
        TRACE_ID,
    )


def test_django_asgi_uses_the_async_twin() -> None:
    from django.core.asgi import get_asgi_application

    before = count("/users/<int:pk>/", "200")
    with serve_asgi(get_asgi_application(), lifespan="off") as url:
        response = httpx.get(f"{url}/users/3/", headers={"X-Request-ID": "dj-async"})
        streamed = httpx.get(f"{url}/astream")
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "dj-async"
    assert count("/users/<int:pk>/", "200") == before + 1
    assert streamed.text == "async row 0\nasync row 1\nasync row 2\n"
    assert "x-request-id" in streamed.headers
    spans = [s.name for s in django_app.exporter.get_finished_spans()]
    assert "GET /users/<int:pk>/" in spans
    # Django closes a streamed response after sending it, on the server's thread: wait
    # (bounded) for that close, which is what ends the request.
    assert _eventually(lambda: count("/astream", "200") == 1)
    size = django_app.registry.get_sample_value(
        f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum",
        {
            "http_request_method": "GET",
            "http_route": "/astream",
            "http_response_status_code": "200",
            "error_type": "",
        },
    )
    assert size == len(streamed.content)


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_django_binds_the_deadline_header_sync_and_async() -> None:
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    header = {names.DEADLINE_HEADER: "2.500"}
    with serve_wsgi(get_wsgi_application()) as url:
        sync_left = httpx.get(f"{url}/budget", headers=header).json()["left"]
        sync_absent = httpx.get(f"{url}/budget").json()["left"]
    with serve_asgi(get_asgi_application(), lifespan="off") as url:
        async_left = httpx.get(f"{url}/abudget", headers=header).json()["left"]
        async_absent = httpx.get(f"{url}/abudget").json()["left"]
    assert 0 < sync_left <= 2.5
    assert 0 < async_left <= 2.5
    assert sync_absent is None
    assert async_absent is None


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_an_exception_django_answers_below_us_is_named(kind: str) -> None:
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    serving = (
        serve_wsgi(get_wsgi_application())
        if kind == "wsgi"
        else serve_asgi(get_asgi_application(), lifespan="off")
    )
    with serving as url:
        response = httpx.get(f"{url}/below", headers={"X-Request-ID": f"below-{kind}"})
    assert response.status_code == 500  # Django's own answer, from below our middleware
    assert response.headers["x-request-id"] == f"below-{kind}"
    error_type = f"{django_app.__name__}.Kaput"
    assert _eventually(lambda: count(names.ROUTE_UNMATCHED, "500", error_type=error_type) >= 1)
    (span,) = [
        s
        for s in django_app.exporter.get_finished_spans()
        if (s.attributes or {}).get("buttress.request_id") == f"below-{kind}"
    ]
    assert span.attributes is not None
    assert span.attributes["error.type"] == error_type
    assert [e.name for e in span.events] == ["exception"]


def test_re_path_routes_are_labelled_as_templates() -> None:
    from django.core.wsgi import get_wsgi_application

    with serve_wsgi(get_wsgi_application()) as url, httpx.Client(base_url=url) as client:
        assert client.get("/articles/2024/").status_code == 200
        assert client.get("/legacy/items/abc.json").text == "order abc"
    assert count("/articles/<year>/", "200") >= 1
    assert count("/legacy/items/<ref>.json", "200") >= 1
    names_ = {s.name for s in django_app.exporter.get_finished_spans()}
    assert {"GET /articles/<year>/", "GET /legacy/items/<ref>.json"} <= names_


@pytest.mark.parametrize(
    ("regex", "template"),
    [
        (r"^articles/(?P<year>[0-9]{4})/$", "articles/<year>/"),
        (r"^api/v1/(?P<x>\d+)/(?P<y>[a-z-]+)\Z", "api/v1/<x>/<y>"),
        (r"^(?:en|fr)/about$", "<param>/about"),
        (r"^files/\d+\.txt$", "files/<param>.txt"),
        (r"^a/(\w+)/b/(?P<n>(?:x|y)+)/$", "a/<param>/b/<n>/"),
        ("users/<int:pk>/", "users/<int:pk>/"),
    ],
)
def test_regex_templates(regex: str, template: str) -> None:
    assert regex_template(regex) == template


def test_a_client_that_leaves_an_async_view_is_499() -> None:
    import socket

    from django.core.asgi import get_asgi_application

    with serve_asgi(get_asgi_application(), lifespan="off") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /aslow HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-1\r\n\r\n")
        # Django cancels the view when the client goes: recorded as the client's doing.
        assert _eventually(
            lambda: count("/aslow", "499", error_type=names.ERROR_CLIENT_DISCONNECT) == 1
        )
    (span,) = [
        s
        for s in django_app.exporter.get_finished_spans()
        if (s.attributes or {}).get("buttress.request_id") == "gone-1"
    ]
    assert span.attributes is not None
    assert span.attributes["error.type"] == names.ERROR_CLIENT_DISCONNECT
