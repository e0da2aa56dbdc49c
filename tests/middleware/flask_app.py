"""A Flask app behind WSGIMiddleware, served by gunicorn in the tests.

Spans and access log lines go to JSON-lines files named by environment variables, so the
test process can read what the server process recorded.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence

from flask import Flask, Response
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from buttress.middleware import TrustedPeers, WSGIMiddleware

ACCESS_FIELDS = (
    "method", "route", "status", "duration_ms", "request_id", "trace_id", "span_id", "path",
    "query", "response_size", "service", "disconnected", "error_type",
)  # fmt: skip


class FileSpanExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            for span in spans:
                record = {
                    "name": span.name,
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                    "trace_id": format(span.context.trace_id, "032x") if span.context else None,
                    "events": [event.name for event in span.events],
                }
                out.write(json.dumps(record) + "\n")
        return SpanExportResult.SUCCESS


class JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: getattr(record, k) for k in ACCESS_FIELDS if hasattr(record, k)}
        return json.dumps({"event": record.getMessage(), **fields})


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(os.environ["TEST_SPANS"])))
handler = logging.FileHandler(os.environ["TEST_ACCESS_LOG"])
handler.setFormatter(JSONLines())
access = logging.getLogger("buttress.access")
access.addHandler(handler)
access.setLevel(logging.INFO)

app = Flask(__name__)


@app.get("/users/<int:user_id>")
def user(user_id: int) -> dict[str, int]:
    return {"id": user_id}


@app.get("/boom")
def boom() -> str:
    raise LookupError("kaput")


@app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[bytes]:
        for i in range(4):
            yield f"part {i}\n".encode()

    return Response(chunks(), mimetype="text/plain")


class Broken(RuntimeError):
    pass


@app.get("/half")
def half() -> Response:
    def chunks() -> Iterator[bytes]:
        yield b"first\n"
        raise Broken("after the first chunk")

    return Response(chunks(), mimetype="text/plain")


@app.get("/big")
def big() -> Response:
    def chunks() -> Iterator[bytes]:
        # Far more than the socket buffers hold: a client that stops reading and closes
        # makes a later write fail.
        for _ in range(400):
            yield b"x" * 65536

    return Response(chunks(), mimetype="application/octet-stream")


app.wsgi_app = WSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    service="flask-test",
    tracer_provider=provider,
    metrics_path="/metrics",
    metrics_max_age=0,  # every scrape sees the requests before it
    # The tests' clients are peers on loopback: their ids and trace context count.
    trusted_peers=TrustedPeers(networks=["127.0.0.1/32"]),
)
