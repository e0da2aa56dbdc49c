"""The OpenTelemetry instrumentations' variables, client.port, the request body size,
response-header capture, and the flush at the lifespan shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from buttress import ConfigurationError
from buttress.middleware import ASGIMiddleware, WSGIMiddleware
from buttress.telemetry import _names as names
from buttress.telemetry import _shutdown

from ._support import Telemetry, call_asgi


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"x-cache", b"hit"), (b"set-cookie", b"session=s3cret")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def ok_without_reading(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(autouse=True)
def _no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_PYTHON_EXCLUDED_URLS",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
        "OTEL_PYTHON_FLASK_EXCLUDED_URLS",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
    ):
        monkeypatch.delenv(name, raising=False)


async def _paths_seen(middleware: ASGIMiddleware, telemetry: Telemetry, *paths: str) -> set[str]:
    for path in paths:
        await call_asgi(middleware, path)
    return {str((s.attributes or {})["url.path"]) for s in telemetry.spans()}


async def test_excluded_urls_are_regular_expressions_searched_in_the_path(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "ping, ^/internal/")
    middleware = ASGIMiddleware(app, **telemetry.options())
    seen = await _paths_seen(middleware, telemetry, "/ping", "/api/ping2", "/internal/x", "/health")
    # The variable replaces the default list: /health is observed again.
    assert seen == {"/health"}


async def test_the_framework_variable_wins_and_an_explicit_option_wins_over_both(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/a")
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/b")
    framework = ASGIMiddleware(app, **telemetry.options())
    assert await _paths_seen(framework, telemetry, "/a", "/b") == {"/a"}
    explicit = ASGIMiddleware(app, exclude=("/c",), **telemetry.options())
    assert await _paths_seen(explicit, telemetry, "/a", "/b", "/c") == {"/a", "/b"}


async def test_header_capture_variables_and_sanitized_fields(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_"
    monkeypatch.setenv(prefix + "SERVER_REQUEST", "X-Tenant,Authorization,X-Secret")
    monkeypatch.setenv(prefix + "SERVER_RESPONSE", "x-cache,Set-Cookie")
    monkeypatch.setenv(prefix + "SANITIZE_FIELDS", "x-secret")
    middleware = ASGIMiddleware(app, **telemetry.options())
    headers = [(b"x-tenant", b"acme"), (b"authorization", b"Bearer t0k"), (b"x-secret", b"v")]
    await call_asgi(middleware, "/", headers=headers)
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.x-tenant"] == ("acme",)
    assert attributes["http.request.header.authorization"] == ("REDACTED",)  # still redacted
    assert attributes["http.request.header.x-secret"] == ("REDACTED",)
    assert attributes["http.response.header.x-cache"] == ("hit",)
    assert attributes["http.response.header.set-cookie"] == ("REDACTED",)
    assert "t0k" not in repr(attributes)
    assert "s3cret" not in repr(attributes)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_PYTHON_EXCLUDED_URLS", "ok,(unclosed"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-ok,not a header"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "a:b"),
    ],
)
def test_bad_values_are_named(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"{name}={value!r}".replace("(", r"\(")):
        ASGIMiddleware(app, **telemetry.options())


async def test_client_port_and_the_request_body_size(telemetry: Telemetry) -> None:
    middleware = ASGIMiddleware(app, **telemetry.options())
    body = [
        {"type": "http.request", "body": b"x" * 300, "more_body": True},
        {"type": "http.request", "body": b"y" * 12, "more_body": False},
    ]
    await call_asgi(middleware, "/", method="POST", receive_messages=body)
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["client.port"] == 50000
    assert attributes["http.request.body.size"] == 312
    labels = {"http_request_method": "POST", "http_route": "<unmatched>", "error_type": ""}
    labels["http_response_status_code"] = "200"
    registry = telemetry.registry
    assert registry.get_sample_value(f"{names.HTTP_SERVER_REQUEST_SIZE}_sum", labels) == 312
    assert registry.get_sample_value(f"{names.HTTP_SERVER_REQUEST_SIZE}_count", labels) == 1
    # A request whose body nobody read has no known size: not counted.
    unread = ASGIMiddleware(ok_without_reading, **telemetry.options())
    await call_asgi(unread, "/")
    get = {**labels, "http_request_method": "GET", "http_response_status_code": "204"}
    assert registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", get) == 1
    assert registry.get_sample_value(f"{names.HTTP_SERVER_REQUEST_SIZE}_count", get) is None


def test_wsgi_client_port_body_size_and_response_headers(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-cache")
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "^/skip")

    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Cache", "miss")])
        return [b"ok"]

    middleware = WSGIMiddleware(wsgi, **telemetry.options())
    for path in ("/skip/me", "/"):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "40123",
            "CONTENT_LENGTH": "42",
            "wsgi.url_scheme": "http",
        }
        body = middleware(environ, lambda *a: lambda data: None)
        b"".join(body)
        getattr(body, "close", lambda: None)()  # the server closes the body: the request ends
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["url.path"] == "/"
    assert attributes["client.port"] == 40123
    assert attributes["http.request.body.size"] == 42
    assert attributes["http.response.header.x-cache"] == ("miss",)
    labels = {"http_request_method": "POST", "http_route": "<unmatched>", "error_type": ""}
    labels["http_response_status_code"] = "200"
    value = telemetry.registry.get_sample_value(f"{names.HTTP_SERVER_REQUEST_SIZE}_sum", labels)
    assert value == 42


class _Counting:
    def __init__(self) -> None:
        self.flushes = 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flushes += 1
        return True

    def shutdown(self) -> None:
        pass


async def test_the_lifespan_shutdown_flushes_before_it_is_reported(telemetry: Telemetry) -> None:
    provider = _Counting()
    seen: list[tuple[str, int]] = []

    async def lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        seen.append((message["type"], provider.flushes))

    _shutdown.register(provider, timeout=5.0)
    try:
        middleware = ASGIMiddleware(lifespan_app, **telemetry.options())
        await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    finally:
        _shutdown._reset()
    assert seen == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]
