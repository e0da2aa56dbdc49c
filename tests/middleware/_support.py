"""Helpers for the middleware tests: telemetry sinks and real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from buttress.telemetry import _names as names

from .._services import free_port, stop_process, wait_for_port

HERE = Path(__file__).resolve().parent


@dataclass
class Telemetry:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    registry: CollectorRegistry

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"tracer_provider": self.provider, "metrics_registry": self.registry, **extra}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def count(self, **labels: str) -> float:
        """Observations of the duration histogram with these labels."""
        labels = {names.LABEL_ERROR_TYPE: "", **labels}
        value = self.registry.get_sample_value(f"{names.HTTP_SERVER_DURATION}_count", labels)
        return value or 0.0

    def series(self, metric: str = names.HTTP_SERVER_DURATION) -> set[tuple[tuple[str, str], ...]]:
        """Distinct label sets of ``metric``'s count samples."""
        found = set()
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == f"{metric}_count":
                    found.add(tuple(sorted(sample.labels.items())))
        return found


@contextlib.contextmanager
def serve_asgi(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_hypercorn(app: Any) -> Iterator[str]:
    """A real hypercorn server for ``app`` on 127.0.0.1, in a thread; yields its base URL."""
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    config.graceful_timeout = 1
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        await serve(app, config, shutdown_trigger=stop.wait)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (polled, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """A real wsgiref server for ``app`` on 127.0.0.1, in a thread; yields its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """A real gunicorn serving ``module:app`` from tests/middleware on 127.0.0.1."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--chdir", str(HERE), "--log-level", "warning",
            "--graceful-timeout", "2", app,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


Message = dict[str, Any]


async def call_asgi(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    receive_messages: list[Message] | None = None,
) -> list[Message]:
    """Drive one HTTP request through ``app`` in-process; returns the messages it sent."""
    sent: list[Message] = []
    incoming = list(receive_messages or [{"type": "http.request", "body": b""}])
    complete = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        # As a server does: the disconnect comes once the response is complete.
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [
            *([] if any(k == b"host" for k, _ in headers or []) else [(b"host", b"testserver")]),
            *(headers or []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


def response_header(messages: list[Message], name: bytes) -> bytes | None:
    start = next(m for m in messages if m["type"] == "http.response.start")
    values = [v for k, v in start["headers"] if k.lower() == name]
    assert len(values) <= 1, values
    return values[0] if values else None
