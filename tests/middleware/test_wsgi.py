"""The WSGI shell driven in-process: errors, interleaving, early close, options."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from buttress import get_correlation_id
from buttress.middleware import WSGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry


def environ(path: str, **extra: str) -> dict[str, Any]:
    base = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
    }
    return {**base, **extra}


class Recorder:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return lambda data: None

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1
        return values[0] if values else None


def run(app: Any, env: dict[str, Any]) -> tuple[Recorder, bytes]:
    recorder = Recorder()
    body = app(env, recorder)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return recorder, data


def unmatched(status: str, error_type: str = "") -> dict[str, str]:
    return {
        "http_request_method": "GET",
        "http_route": names.ROUTE_UNMATCHED,
        "http_response_status_code": status,
        "error_type": error_type,
    }


def test_a_raising_app_gets_a_500_with_the_id_and_the_error_is_logged(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise ZeroDivisionError("no")

    middleware = WSGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    recorder, body = run(middleware, environ("/x", HTTP_X_REQUEST_ID="wsgi-err"))
    assert recorder.status.startswith("500")
    assert recorder.header("X-Request-ID") == "wsgi-err"
    assert body == b"Internal Server Error"
    (record,) = [r for r in caplog.records if r.name == "buttress.middleware"]
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ZeroDivisionError"
    assert telemetry.count(**unmatched("500", "ZeroDivisionError")) == 1
    assert get_correlation_id() is None


def test_error_response_off_reraises_untouched(telemetry: Telemetry) -> None:
    error = ZeroDivisionError("no")

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise error

    middleware = WSGIMiddleware(app, error_response=False, **telemetry.options())
    with pytest.raises(ZeroDivisionError) as caught:
        middleware(environ("/x"), Recorder())
    assert caught.value is error
    assert telemetry.count(**unmatched("500", "ZeroDivisionError")) == 1
    assert get_correlation_id() is None


def chunked(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    size = int(env["PATH_INFO"].strip("/")) if env["PATH_INFO"][1:].isdigit() else 1
    for _ in range(3):
        yield b"x" * size


def test_interleaved_bodies_keep_their_own_sizes_and_ids(telemetry: Telemetry) -> None:
    middleware = WSGIMiddleware(chunked, **telemetry.options(trusted_peers="any"))
    first, second = Recorder(), Recorder()
    body_a = middleware(environ("/10", HTTP_X_REQUEST_ID="id-a"), first)
    body_b = middleware(environ("/1000", HTTP_X_REQUEST_ID="id-b"), second)
    a, b = iter(body_a), iter(body_b)
    chunks = [next(a), next(b), next(a), next(b), next(a), next(b)]
    assert b"".join(chunks) == b"x" * 3030
    for it, body in ((a, body_a), (b, body_b)):
        assert list(it) == []
        body.close()  # type: ignore[attr-defined]
    assert get_correlation_id() is None
    assert (first.header("x-request-id"), second.header("x-request-id")) == ("id-a", "id-b")
    sizes = {
        s.attributes["buttress.request_id"]: s.attributes["url.path"]
        for s in telemetry.spans()
        if s.attributes
    }
    assert sizes == {"id-a": "/10", "id-b": "/1000"}
    total = telemetry.registry.get_sample_value(
        f"{names.HTTP_SERVER_RESPONSE_SIZE}_sum", unmatched("200")
    )
    assert total == 3030


def test_closing_before_the_last_chunk_is_a_disconnect(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    middleware = WSGIMiddleware(chunked, **telemetry.options())
    body = middleware(environ("/5"), Recorder())
    assert next(iter(body)) == b"xxxxx"
    body.close()  # type: ignore[attr-defined]
    (record,) = [r for r in caplog.records if r.name == "buttress.access"]
    assert record.__dict__["disconnected"] is True
    assert record.__dict__["response_size"] == 5


def test_metrics_endpoint_and_exclusions(telemetry: Telemetry) -> None:
    middleware = WSGIMiddleware(chunked, metrics_path="/metrics", **telemetry.options())
    run(middleware, environ("/healthz"))
    run(middleware, environ("/2"))
    recorder, body = run(
        middleware, environ("/metrics", HTTP_ACCEPT="application/openmetrics-text")
    )
    assert str(recorder.header("content-type")).startswith("application/openmetrics-text")
    text = body.decode()
    assert text.rstrip().endswith("# EOF")
    labels = ",".join(
        [
            'error_type=""',
            'http_request_method="GET"',
            'http_response_status_code="200"',
            f'http_route="{names.ROUTE_UNMATCHED}"',
        ]
    )
    assert f"{names.HTTP_SERVER_DURATION}_count{{{labels}}} 1.0" in text
    assert "healthz" not in text


def test_log_lines_while_a_body_streams_carry_the_request_id(telemetry: Telemetry) -> None:
    seen: list[str | None] = []

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            for i in range(3):
                seen.append(get_correlation_id())  # runs as the server pulls each chunk
                yield b"%d" % i

        return body()

    middleware = WSGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    body = middleware(environ("/s", HTTP_X_REQUEST_ID="stream-1"), Recorder())
    assert b"".join(body) == b"012"
    assert get_correlation_id() is None  # only bound while a chunk is made
    body.close()  # type: ignore[attr-defined]
    assert seen == ["stream-1"] * 3


def test_a_streamed_body_runs_in_the_requests_trace_context(telemetry: Telemetry) -> None:
    from opentelemetry import baggage, trace

    seen: list[tuple[object, int]] = []

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterable[bytes]:
            for i in range(2):
                # The trusted peer's baggage and the request's span, as the handler saw them.
                span = trace.get_current_span().get_span_context()
                seen.append((baggage.get_baggage("tenant"), span.trace_id))
                yield b"%d" % i

        return body()

    middleware = WSGIMiddleware(app, **telemetry.options(trusted_peers="any"))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    env = environ("/s", HTTP_TRACEPARENT=parent, HTTP_BAGGAGE="tenant=acme")
    body = middleware(env, Recorder())
    assert b"".join(body) == b"01"
    assert baggage.get_baggage("tenant") is None  # only while a chunk is made
    body.close()  # type: ignore[attr-defined]
    assert seen == [("acme", 0x0AF7651916CD43DD8448EB211C80319C)] * 2
