"""A small HTTP/1.1 upstream on 127.0.0.1 that fails on command, for the transport tests.

It runs a raw asyncio server on its own thread (fast enough for the 10,000-request leak
test) and answers by path:

- ``/ok``: 200 with a short body;
- ``/status/<code>``: that status; ``?retry_after=<value>`` adds a Retry-After header;
- ``/flaky/<key>/<n>``: 503 for the first ``n`` requests with that key, then 200;
- ``/drop``: closes the connection without answering;
- ``/slow/<seconds>``: 200 after that long;
- ``/busy/<key>``: 200, but while ``outage`` is set, 503 for 9 requests in 10 per key;
- ``/hold/<key>``: the first request with that key waits until ``release(key)`` (or 10 s),
  later ones answer at once (with the status ``?then=<code>`` gives, 200 by default).

``SpawnedUpstream`` runs the same server in a child process (for load, where sharing the
GIL with the client would measure the GIL); ``/count`` tells how many requests it got.

Every request is recorded (method, path, headers, and the server span it started: trace
context is extracted from the headers with the global propagator, as an OpenTelemetry
instrumented server would).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanContext, SpanKind

from tests._services import free_port, wait_for_port

_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    span: SpanContext | None = None


@dataclass
class Upstream:
    tracer_provider: trace.TracerProvider | None = None
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"  # another 127.x address plays a third-party host
    seen: list[Seen] = field(default_factory=list)
    keep: bool = True  # record every request (off for the leak test)
    outage: bool = False  # /busy refuses 90 % of requests while set
    count: int = 0
    _flaky: Counter[str] = field(default_factory=Counter)
    _held: dict[str, asyncio.Event] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hits(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path.split("?")[0] == path)

    def release(self, key: str) -> None:
        """Let the request held at ``/hold/<key>`` answer."""
        loop = self._loop
        assert loop is not None

        def release() -> None:
            self._held.setdefault(key, asyncio.Event()).set()

        loop.call_soon_threadsafe(release)

    def __enter__(self) -> Upstream:
        started = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
            started.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="upstream", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop, server = self._loop, self._server
        assert loop is not None
        assert server is not None
        assert self._thread is not None

        async def stop() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:  # stopping: end quietly (asyncio would log it)
            pass
        finally:
            writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            elif headers.get("transfer-encoding") == "chunked":
                await _skip_chunks(reader)
            self.count += 1
            answer = await self._answer(method, target, headers)
            if answer is None:  # /drop
                writer.transport.abort()
                return
            writer.write(answer)
            await writer.drain()
            if headers.get("connection") == "close":
                return

    async def _answer(self, method: str, target: str, headers: dict[str, str]) -> bytes | None:
        path, _, query = target.partition("?")
        seen = Seen(method, target, headers)
        if self.tracer_provider is not None:
            parent = propagate.extract(headers)
            tracer = self.tracer_provider.get_tracer("upstream")
            with tracer.start_as_current_span(
                f"{method} {path}", context=parent, kind=SpanKind.SERVER
            ) as span:
                seen.span = span.get_span_context()
        if self.keep:
            self.seen.append(seen)
        parts = path.strip("/").split("/")
        extra: dict[str, Any] = {}
        status = 200
        if parts[0] == "status":
            status = int(parts[1])
            for pair in query.split("&"):
                key, _, value = pair.partition("=")
                if key == "retry_after":
                    extra["Retry-After"] = value.replace("+", " ")
        elif parts[0] == "flaky":
            key, failures = parts[1], int(parts[2])
            self._flaky[key] += 1
            if self._flaky[key] <= failures:
                status = 503
        elif parts[0] == "drop":
            return None
        elif parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
        elif parts[0] == "busy":
            counted = f"busy:{parts[1]}"
            self._flaky[counted] += 1
            if self.outage and self._flaky[counted] % 10:
                status = 503
        elif parts[0] == "hold":
            key = parts[1]
            self._flaky[f"hold:{key}"] += 1
            if self._flaky[f"hold:{key}"] == 1:
                held = self._held.setdefault(key, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(held.wait(), 10)
                extra["X-Held"] = "1"
            else:
                for pair in query.split("&"):
                    name, _, value = pair.partition("=")
                    if name == "then":
                        status = int(value)
        elif parts[0] == "count":
            extra["X-Count"] = self.count
        body = f"status {status}".encode()
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class SpawnedUpstream:
    """The same upstream in a child process: no GIL shared with the client under test."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        """Requests the upstream received so far (this one excluded)."""
        with httpx.Client() as http:
            return int(http.get(f"{self.url}/count").headers["x-count"]) - 1

    def __enter__(self) -> SpawnedUpstream:
        argv = [sys.executable, "-m", "tests.middleware._upstream", str(self.port)]
        self._process = subprocess.Popen(argv, cwd=_ROOT)
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)


def _serve(port: int) -> None:
    upstream = Upstream(port=port, keep=False)

    async def main() -> None:
        server = await asyncio.start_server(upstream._handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _skip_chunks(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
