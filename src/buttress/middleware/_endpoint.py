"""The ``/metrics`` endpoint the shells serve: who may scrape, and what a scrape costs.

Only ``GET`` and ``HEAD`` are answered (405 otherwise). A bearer token (compared in
constant time) and a list of networks can each be required. Rendering is bounded: one
render at a time, a scrape that waited for a render in progress takes its result, and a
body younger than ``max_age`` seconds is served again, so any number of scrapers cost at
most one render per ``max_age``. The ASGI shell renders on a worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Final

from prometheus_client.exposition import choose_encoder

from .._errors import ConfigurationError
from .._trust import TrustedPeers
from ..telemetry._exposition import render

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["MetricsEndpoint", "Refusal", "serve_metrics"]

Refusal = tuple[int, list[tuple[str, str]], bytes]
"""``(status, headers, body)`` of a scrape that is not answered with metrics."""

_ALLOWED: Final = ("GET", "HEAD")
_NOT_ALLOWED: Final[Refusal] = (
    405,
    [("allow", "GET, HEAD"), ("content-type", "text/plain; charset=utf-8")],
    b"Method Not Allowed",
)
_UNAUTHORISED: Final[Refusal] = (
    401,
    [("www-authenticate", "Bearer"), ("content-type", "text/plain; charset=utf-8")],
    b"Unauthorized",
)
_FORBIDDEN: Final[Refusal] = (403, [("content-type", "text/plain; charset=utf-8")], b"Forbidden")


class MetricsEndpoint:
    """Access checks and a bounded-cost render for one middleware's ``metrics_path``."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        *,
        token: str | None = None,
        networks: Iterable[str] | None = None,
        max_age: float | timedelta = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        if token is not None and (
            not isinstance(token, str) or len(token) < 16 or not token.isascii()
        ):
            raise ConfigurationError(
                "metrics_token must be an ASCII string of at least 16 characters"
            )
        self._expected = f"Bearer {token}".encode("ascii") if token is not None else None
        self._networks = (
            None if networks is None else TrustedPeers(networks=networks)
        )  # "networks=[]" is refused there: it would lock every scraper out
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if (
            isinstance(max_age, bool)
            or not isinstance(max_age, int | float)
            or not 0 <= max_age <= 60
        ):
            raise ConfigurationError(f"metrics_max_age must be 0 to 60 seconds, got {max_age!r}")
        self.max_age = float(max_age)
        self.clock = clock
        self._lock = threading.Lock()
        # content type -> (render started, render finished, body); replaced under the lock.
        self._cache: dict[str, tuple[float, float, bytes]] = {}

    def refusal(
        self, method: str, client: str | None, authorization: bytes | str | None
    ) -> Refusal | None:
        """Why this scrape is not answered with metrics, or ``None`` when it is."""
        if method not in _ALLOWED:
            return _NOT_ALLOWED
        if self._networks is not None and not self._networks.trusts(client, None):
            return _FORBIDDEN
        expected = self._expected
        if expected is not None:
            if isinstance(authorization, str):
                authorization = authorization.encode("latin-1", "replace")
            if authorization is None or not hmac.compare_digest(authorization, expected):
                return _UNAUTHORISED
        return None

    def body(self, accept: str | None) -> tuple[bytes, str]:
        """``(body, content_type)``: rendered now, or the render this scrape waited for."""
        _, content_type = choose_encoder(accept or "")
        arrived = self.clock()
        with self._lock:
            cached = self._cache.get(content_type)
            if cached is not None:
                started, finished, body = cached
                # Rendered while we waited for the lock, or young enough: served again.
                if finished >= arrived or self.clock() - started < self.max_age:
                    return body, content_type
            started = self.clock()
            body, content_type = render(self.registry, accept)
            self._cache[content_type] = (started, self.clock(), body)
            return body, content_type

    def answer(
        self, method: str, client: str | None, authorization: bytes | str | None, accept: str | None
    ) -> Refusal:
        """The whole answer for a sync shell: a refusal, or 200 with the body."""
        refused = self.refusal(method, client, authorization)
        if refused is not None:
            return refused
        body, content_type = self.body(accept)
        return 200, [("content-type", content_type)], body

    async def answer_async(
        self, method: str, client: str | None, authorization: bytes | str | None, accept: str | None
    ) -> Refusal:
        """:meth:`answer`, rendering on a worker thread."""
        refused = self.refusal(method, client, authorization)
        if refused is not None:
            return refused
        body, content_type = await self.body_async(accept)
        return 200, [("content-type", content_type)], body

    async def body_async(self, accept: str | None) -> tuple[bytes, str]:
        """:meth:`body` on a worker thread: a slow render never stalls the event loop."""
        return await asyncio.to_thread(self.body, accept)


def serve_metrics(
    port: int,
    *,
    host: str = "127.0.0.1",
    metrics_registry: CollectorRegistry | None = None,
    token: str | None = None,
    networks: Iterable[str] | None = None,
    max_age: float | timedelta = 1.0,
    niceness: int = 10,
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` on a port of its own, from a daemon thread; returns the server.

    The same checks and bounds as the middleware's ``metrics_path``. Renders run at a
    lower CPU priority (``niceness`` added, on Linux, to the rendering thread only), so a
    busy host serves requests before scrapes. Call it where no requests are served, such
    as gunicorn's master process (its ``when_ready`` hook): see docs/security.md.
    ``server.shutdown()`` stops it.
    """
    if isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= 19:
        raise ConfigurationError(f"niceness must be 0 to 19, got {niceness!r}")
    endpoint = MetricsEndpoint(metrics_registry, token=token, networks=networks, max_age=max_age)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if niceness:
                _lower_priority(niceness)
            path = self.path.partition("?")[0]
            answer: Refusal = (404, [], b"Not Found")
            if path == "/metrics":
                answer = endpoint.answer(
                    self.command,
                    self.client_address[0],
                    self.headers.get("Authorization"),
                    self.headers.get("Accept"),
                )
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape on stderr is noise

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="buttress-metrics", daemon=True)
    thread.start()
    return server


def _lower_priority(niceness: int) -> None:
    # On Linux a thread is a task of its own: this lowers the priority of the rendering
    # thread only. Raising niceness needs no privilege; elsewhere it is a no-op.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
