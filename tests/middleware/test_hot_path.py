"""What the cheaper per-request path of the ASGI shell must still do.

Each test pins a behaviour that a shortcut on the hot path could lose: the app's own
messages left untouched, hosts beyond the split cache, request bodies counted by the
watch, exemplars made at scrape.
"""

from __future__ import annotations

from typing import Any

from buttress.middleware import ASGIMiddleware
from buttress.telemetry import _names as names

from ._support import Telemetry, call_asgi, response_header

# One start message reused for every response, as an app may keep a constant.
_START: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": []}


async def reusing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(_START)
    await send({"type": "http.response.body", "body": b"ok"})


async def test_an_app_reusing_its_start_message_finds_it_unchanged(
    telemetry: Telemetry,
) -> None:
    app = ASGIMiddleware(reusing_app, **telemetry.options())
    first = response_header(await call_asgi(app, "/a"), b"x-request-id")
    second = response_header(await call_asgi(app, "/b"), b"x-request-id")
    assert first is not None
    assert second is not None
    assert first != second  # each response has its own id
    assert _START["headers"] == []  # added to a copy, never to the app's message


async def test_every_host_past_the_split_cache_is_still_split_right(
    telemetry: Telemetry,
) -> None:
    app = ASGIMiddleware(reusing_app, **telemetry.options())
    for i in range(300):  # more distinct hosts than the cache keeps
        await call_asgi(app, "/", headers=[(b"host", f"h{i}.example.com:{1000 + i}".encode())])
    spans = telemetry.spans()
    assert len(spans) == 300
    for i, span in enumerate(spans):
        assert span.attributes is not None
        assert span.attributes[names.ATTR_SERVER_ADDRESS] == f"h{i}.example.com"
        assert span.attributes[names.ATTR_SERVER_PORT] == 1000 + i


async def test_a_body_in_chunks_is_counted_whole(telemetry: Telemetry) -> None:
    async def reading_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = ASGIMiddleware(reading_app, **telemetry.options())
    chunks = [
        {"type": "http.request", "body": b"x" * 10, "more_body": True},
        {"type": "http.request", "body": b"y" * 7, "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    await call_asgi(app, "/upload", method="POST", receive_messages=chunks)
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes[names.ATTR_HTTP_REQUEST_BODY_SIZE] == 17
    labels = {
        names.LABEL_METHOD: "POST",
        names.LABEL_ROUTE: names.ROUTE_UNMATCHED,
        names.LABEL_STATUS: "200",
        names.LABEL_ERROR_TYPE: "",
    }
    total = telemetry.registry.get_sample_value(f"{names.HTTP_SERVER_REQUEST_SIZE}_sum", labels)
    assert total == 17


async def test_a_sampled_request_leaves_its_trace_id_as_the_exemplar(
    telemetry: Telemetry,
) -> None:
    app = ASGIMiddleware(reusing_app, **telemetry.options())
    await call_asgi(app, "/")
    (span,) = telemetry.spans()
    trace_id = format(span.context.trace_id, "032x")
    exemplars = [
        sample.exemplar
        for family in telemetry.registry.collect()
        for sample in family.samples
        if sample.name == f"{names.HTTP_SERVER_DURATION}_bucket" and sample.exemplar
    ]
    assert len(exemplars) == 1
    assert exemplars[0].labels == {names.LOG_KEY_TRACE_ID: trace_id}
