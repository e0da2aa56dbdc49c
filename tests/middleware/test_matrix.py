"""The compatibility matrix: the README's setup beside what else a team runs, on real servers.

Each stack runs in its own server process (uvicorn for ASGI, gunicorn with threads for
WSGI) with ``buttress.configure()`` as the README has it, spans exported over OTLP to a
real receiver and JSON logs on stderr. Whatever else is installed (FastAPI's native
telemetry, an OpenTelemetry instrumentor), each request must have exactly one server
span, in one trace with the framework's own child spans, and the id header, the logs and
the exemplar must all name that trace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from buttress.telemetry import _names as names

from .._services import free_port, stop_process, wait_for_port
from ..telemetry._otlp import OTLPReceiver, attributes

HERE = Path(__file__).resolve().parent
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER

try:
    import fastapi.telemetry  # noqa: F401

    NATIVE = {"fastapi.endpoint"}  # this FastAPI has native telemetry: its spans are children
except ImportError:  # an older FastAPI (the oldest pyproject allows): none of its own
    NATIVE = set()

# Starlette itself leaves the route in the scope only from 1.8 on (FastAPI always does).
STARLETTE_ROUTE = (
    "/users/{user_id}"
    if tuple(int(p) for p in version("starlette").split(".")[:2]) >= (1, 8)
    else names.ROUTE_UNMATCHED
)

# stack -> (server, {path: route template}, names of the framework's own child spans)
STACKS: dict[str, tuple[str, dict[str, str], set[str]]] = {
    "fastapi-native": ("uvicorn", {"/users/7": "/users/{user_id}"}, NATIVE),
    "fastapi-native-off": ("uvicorn", {"/users/7": "/users/{user_id}"}, set()),
    "fastapi-instrumentor": (
        "uvicorn",
        {"/users/7": "/users/{user_id}"},
        {"GET /users/{user_id} http send"},
    ),
    "starlette": ("uvicorn", {"/users/7": STARLETTE_ROUTE}, set()),
    "flask": ("gunicorn", {"/users/7": "/users/<int:user_id>"}, set()),
    "flask-instrumentor": (
        "gunicorn",
        {"/users/7": "/users/<int:user_id>"},
        {"GET /users/<int:user_id>"},
    ),
    "django-wsgi": (
        "gunicorn",
        {"/users/7": "/users/<int:pk>", "/ausers/8": "/ausers/<int:pk>"},
        set(),
    ),
    "django-asgi": (
        "uvicorn",
        {"/users/7": "/users/<int:pk>", "/ausers/8": "/ausers/<int:pk>"},
        set(),
    ),
}


@contextlib.contextmanager
def serve(stack: str, receiver: OTLPReceiver, log: Path) -> Iterator[str]:
    server = STACKS[stack][0]
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        MATRIX_STACK=stack,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.endpoint}/v1/traces",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
    )
    if server == "uvicorn":
        command = [
            sys.executable, "-m", "uvicorn", "matrix_app:app", "--app-dir", str(HERE),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
    else:
        command = [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--threads", "4", "--chdir", str(HERE), "--log-level", "warning", "matrix_app:app",
        ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)


def _spans_of(receiver: OTLPReceiver, trace_id: str, timeout: float = 15.0) -> list[Any]:
    """The trace's spans once its server span arrived (its children end before it does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = [s for _, s in receiver.spans() if s.trace_id.hex() == trace_id]
        if any(s.kind == SERVER_KIND for s in spans):
            return spans
        time.sleep(0.02)
    raise AssertionError(f"no server span for trace {trace_id} within {timeout}s")


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            line = json.loads(text)
            if isinstance(line, dict):
                lines.append(line)
    return lines


def _exemplar(metrics: str, route: str) -> str | None:
    pattern = re.compile(
        rf'^{names.HTTP_SERVER_DURATION}_bucket\{{[^}}]*http_route="{re.escape(route)}"'
        r'[^}]*\} \S+ # \{trace_id="([0-9a-f]{32})"\}',
        re.MULTILINE,
    )
    found = pattern.findall(metrics)
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_one_server_span_and_one_trace_per_request(stack: str, tmp_path: Path) -> None:
    _, routes, children = STACKS[stack]
    log = tmp_path / "server.log"
    with OTLPReceiver() as receiver, serve(stack, receiver, log) as url:
        ids = {}
        for path in routes:
            response = httpx.get(url + path, timeout=10)
            assert response.status_code == 200, response.text
            ids[path] = response.headers["x-request-id"]
        metrics = httpx.get(
            f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
        ).text
        traces = {path: _spans_of(receiver, trace_id) for path, trace_id in ids.items()}

    lines = _log_lines(log)
    for path, route in routes.items():
        trace_id = ids[path]
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id), trace_id  # the trace id serves
        spans = traces[path]
        (server,) = [s for s in spans if s.kind == SERVER_KIND]
        server_attributes = attributes(server.attributes)
        routed = route != names.ROUTE_UNMATCHED
        assert server_attributes.get(names.ATTR_HTTP_ROUTE) == (route if routed else None)
        assert server_attributes[names.ATTR_REQUEST_ID] == trace_id  # buttress enriched it
        assert server_attributes[names.ATTR_HTTP_RESPONSE_STATUS_CODE] == 200
        assert server.name == (f"GET {route}" if routed else "GET")
        # No second trace for this request anywhere.
        elsewhere = [
            s
            for _, s in receiver.spans()
            if attributes(s.attributes).get("url.path") == path and s.trace_id.hex() != trace_id
        ]
        assert elsewhere == []
        # The framework's own spans sit under the one server span.
        by_id = {s.span_id: s for s in spans}
        assert {s.name for s in spans if s is not server} >= children
        for span in spans:
            parent = span
            while parent.parent_span_id and parent.parent_span_id in by_id:
                parent = by_id[parent.parent_span_id]
            assert parent is server, span.name

        (access,) = [
            line
            for line in lines
            if line.get("event") == names.EVENT_ACCESS and line.get("path") == path
        ]
        assert (access["request_id"], access["trace_id"]) == (trace_id, trace_id)
        assert access["span_id"] == server.span_id.hex()
        handled = [line for line in lines if line.get("event") == "handled"]
        assert trace_id in {line.get("trace_id") for line in handled}
        assert _exemplar(metrics, route) == trace_id
