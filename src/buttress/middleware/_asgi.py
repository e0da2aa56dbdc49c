"""The ASGI shell: any ASGI app, and Starlette/FastAPI routes read after routing.

Per-request state lives in local variables and the wrapped ``send``/``receive`` closures,
never on the middleware instance. Lifespan scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, Unpack

from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter

from .._http import KNOWN_METHODS, normalise_method
from ._disconnect import ReceiveWatch, Watches
from ._faults import HTTPFaults, check_faults
from ._observer import Exchange, Observer
from ._options import MiddlewareOptions
from ._swallowed import handled_exception
from ._websocket import observe_websocket

__all__ = ["ASGIMiddleware"]

# Loose on purpose: frameworks type scopes and messages each their own way (TypedDicts,
# MutableMappings), and the middleware must accept any of them.
Scope = Any
Message = Any
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

_MAX_CACHED_ROUTES: Final = 10_000
# What a request header is to us (see ASGIMiddleware._wanted_headers).
_ID, _HOST, _AGENT, _DEADLINE, _SECRET, _TRACE = range(6)
_ERROR_BODY: Final = b"Internal Server Error"


class _HeaderGetter(Getter[RawHeaders]):
    """Reads trace context straight from ASGI's raw header list (names are lower-case)."""

    def get(self, carrier: RawHeaders, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: RawHeaders) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_getter: Final = _HeaderGetter()


class ASGIMiddleware:
    """Correlation ids, a server span, RED metrics and an access line for an ASGI app.

    ``app.add_middleware(ASGIMiddleware, service="checkout")`` or
    ``app = ASGIMiddleware(app, service="checkout")``. Options are those of the request
    observer (see docs/middleware.md); each feature can be switched off.
    """

    def __init__(
        self,
        wrapped: ASGIApp | None = None,
        /,
        *,
        app: ASGIApp | None = None,
        faults: HTTPFaults | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        # Positional as a rule; Starlette before 0.38 builds middleware as cls(app=app).
        inner = wrapped if wrapped is not None else app
        if inner is None:
            raise TypeError("ASGIMiddleware needs the ASGI app it wraps")
        app = inner
        self.app: ASGIApp = app
        merged: MiddlewareOptions = {"frameworks": ("FASTAPI", "STARLETTE"), **options}
        self.observer = Observer(**merged)
        # Faults sit inside the observer, so injected responses are measured like real ones.
        checked = check_faults(faults)
        self._observed_app = checked.wrap_asgi(app) if checked is not None else app
        key = self.observer.request_id_key
        self._id_key = key
        self._id_name = key if key is not None else b""
        self._deadline_key = self.observer.deadline_key
        self._secret_key = self.observer.secret_key
        # route object id -> (route, label). The route itself is kept so a recycled id
        # can never hand out another route's label.
        self._routes: dict[int, tuple[object, str | None]] = {}
        self._watches = Watches()
        self._wanted: tuple[object, dict[bytes, int], bool] = (None, {}, True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                entry = scope.get("app")
                await observe_websocket(
                    self.observer,
                    self.app,
                    scope,
                    receive,
                    send,
                    lambda: self._route(scope, entry),
                    scope["headers"],
                    _getter,
                )
                return
            if scope["type"] == "lifespan":
                send = _flushing_send(send)
            await self.app(scope, receive, send)
            return
        observer = self.observer
        path: str = scope["path"]
        if path == observer.metrics_path:
            await self._serve_metrics(scope, send)
            return
        health = observer.health
        if health is not None and path in health.paths:
            await health.serve_asgi(scope, send)  # never measured: probes are not traffic
            return
        headers: RawHeaders = scope["headers"]
        incoming = host = agent = deadline = secret = None
        textmap = propagate.get_global_textmap()
        cached = self._wanted
        if cached[0] is not textmap:
            cached = self._wanted_headers(textmap)
        _, wanted, traced = cached
        # One dictionary look-up per header, not a comparison with each name we read.
        for name, value in headers:
            slot = wanted.get(name)
            if slot is not None:
                if slot == _ID:
                    incoming = value
                elif slot == _HOST:
                    host = value
                elif slot == _AGENT:
                    agent = value
                elif slot == _DEADLINE:
                    deadline = value
                elif slot == _SECRET:
                    secret = value
                else:
                    traced = True
        method: str = scope["method"]
        original = None
        if method not in KNOWN_METHODS:
            method, original = normalise_method(method)
        client = scope.get("client")
        query = scope.get("query_string")
        # Positional: the cheapest call, on every request.
        exchange = Exchange(
            method,
            path,
            query.decode("latin-1") if query else "",
            scope.get("scheme", "http"),
            scope.get("http_version", "1.1"),
            not observer.excluded(path),
            original,
            host.decode("latin-1") if host is not None else None,
            scope.get("server"),
            client[0] if client else None,
            agent.decode("latin-1") if agent is not None else None,
            observer.captured_headers(lambda h: _first(headers, h))
            if observer.capture_headers
            else None,
        )
        if client:
            exchange.client_port = client[1]
        observer.begin(exchange, incoming, headers, _getter, traced, deadline, secret)
        call = _Call(self, scope, receive, send, exchange)
        if exchange.observed:
            self._watches.register(call)
            app_receive: Receive = call.receive
        else:
            app_receive = receive  # nothing recorded, nothing to watch or count
        admission = observer.admission
        try:
            # Admission decides after begin(), so a refusal has its id, span and log line.
            if admission is None or await admission.admit_asgi(exchange, headers, call.send):
                await self._observed_app(scope, app_receive, call.send)
        except asyncio.CancelledError:
            if not exchange.finished:
                exchange.disconnected = True
            raise
        except Exception as error:
            if not exchange.finished:
                exchange.error = error
                if not call.started and observer.error_response:
                    await self._answer_500(call.send)
            raise
        finally:
            call.stop()
            if not exchange.finished:
                call.finish()
            observer.release(exchange)

    def _wanted_headers(self, textmap: object) -> tuple[object, dict[bytes, int], bool]:
        """Header name -> what it is, for the names this middleware reads, per propagator.

        With the propagator itself and whether every request is to be extracted (a
        propagator that declares no fields). Cached per propagator object, so one set
        after start-up is honoured.
        """
        fields, _ = self.observer.propagation_fields()
        wanted: dict[bytes, int] = dict.fromkeys(fields or (), _TRACE)
        # Later entries win, as the earlier comparison did first.
        mine = (
            (self._secret_key, _SECRET),
            (self._deadline_key, _DEADLINE),
            (b"user-agent", _AGENT),
            (b"host", _HOST),
            (self._id_key, _ID),
        )
        wanted.update({key: slot for key, slot in mine if key is not None})
        made = self._wanted = (textmap, wanted, fields is None)  # swapped whole: thread-safe
        return made

    async def _answer_500(self, send: Send) -> None:
        # Whoever would answer otherwise (the server, Starlette's ServerErrorMiddleware
        # outside us) cannot add our id header; answer first, then re-raise unchanged.
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(_ERROR_BODY)).encode()),
                        # The app failed mid-request: the connection may hold an unread
                        # body, so close it rather than have the server reset it later.
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _ERROR_BODY})
        except Exception:
            pass

    def _route(self, scope: Scope, entry_app: object = None) -> str | None:
        """The route template the app's router chose, read from the scope after routing."""
        route = scope.get("route")
        if route is None:
            return None
        cached = self._routes.get(id(route))
        if cached is not None and cached[0] is route:
            return cached[1]
        label = _template(route)
        if label is not None:
            # Reached through a Mount or a Host: the scope holds the mount's raw prefix
            # only, and nothing of the host, so the template's prefix comes from the
            # route tree (walked once per route, then cached).
            for root in (entry_app, self.app):
                prefix = _mount_prefix(getattr(root, "routes", None), route)
                if prefix is not None:
                    label = prefix + label
                    break
        if len(self._routes) < _MAX_CACHED_ROUTES:
            self._routes[id(route)] = (route, label)
        return label

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        endpoint = self.observer.metrics_endpoint
        assert endpoint is not None  # there is one whenever metrics_path is set
        headers = scope["headers"]
        client = scope.get("client")
        status, extra, body = await endpoint.answer_async(
            scope["method"],
            client[0] if client else None,
            _first(headers, "authorization"),
            _first(headers, "accept"),
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


class _Call(ReceiveWatch):
    """One HTTP request in the shell: the app's ``send`` and ``receive`` go through it.

    One object per request holds what the shell needs between messages (the exchange, the
    scope for the route, the id header), and is the request's disconnect watch as well, so
    a request makes neither closures nor a separate watch. ``send`` is a plain method that
    returns the server's awaitable: the app's ``await send(...)`` awaits the server's
    coroutine directly, with no frame of ours in between.
    """

    started = False  # whether the response started (a class default, like the watch's)

    def __init__(
        self,
        middleware: ASGIMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
    ) -> None:
        # ReceiveWatch.__init__, inline (it stores receive alone): every request's path.
        self._receive = receive
        self._middleware = middleware
        self._scope = scope
        # The app the server called, kept now: a mounted app may replace scope["app"].
        self._entry = scope.get("app")
        self._send = send
        self._exchange = exchange
        rid = exchange.request_id
        self._id_header = (middleware._id_name, rid.encode("ascii")) if rid is not None else None

    def send(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        exchange = self._exchange
        if kind == "http.response.start":
            self.started = True
            status = exchange.status = message["status"]
            if status >= 500 and exchange.error is None:
                # An exception handler (Starlette's, FastAPI's) answering from its
                # except block: the exception it swallowed is the request's error.
                exchange.error = handled_exception(status)
            observer = self._middleware.observer
            if observer.capture_response_headers:
                exchange.response_headers = observer.captured_response_headers(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", ())
                )
            if self._id_header is not None:
                message = _with_header(message, self._id_header, self._middleware._id_key)
        elif kind == "http.response.body":
            exchange.size += len(message.get("body", b""))
            if not message.get("more_body", False):
                # The response ends here. Recording it before handing over the last
                # chunk means a client that has the whole body also finds the request
                # in metrics, spans and logs, and background tasks the app runs after
                # the body are not counted as request latency.
                self.stop()
                self.finish()
        elif kind == "http.response.pathsend":
            self.stop()
            self.finish()
        return self._send(message)

    def disconnected(self) -> None:
        # The client went away before the response ended: record it now, as what the
        # client got (499 before any response, else the status with client_disconnect),
        # however long the app goes on working.
        exchange = self._exchange
        if not exchange.finished:
            exchange.disconnected = True
            self.finish()

    def finish(self) -> None:
        exchange = self._exchange
        if self.request_size is not None:
            exchange.request_size = self.request_size
        middleware = self._middleware
        middleware.observer.finish(exchange, middleware._route(self._scope, self._entry))


def _flushing_send(send: Send) -> Send:
    """``send`` for the lifespan scope: telemetry flushed before the shutdown is reported.

    The server stops the process soon after ``lifespan.shutdown.complete`` (uvicorn then
    re-raises SIGTERM, so ``atexit`` never runs): this is the last moment to export what
    the last requests left pending. Bounded by configure()'s ``flush_timeout``.
    """

    async def flushing_send(message: Message) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            from ..telemetry._shutdown import flush

            await asyncio.get_running_loop().run_in_executor(None, flush)
        await send(message)

    return flushing_send


def _first(headers: RawHeaders, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in headers:
        if key == wanted:
            return value.decode("latin-1")
    return None


def _with_header(message: Message, header: tuple[bytes, bytes], key: bytes | None) -> Message:
    existing = message.get("headers", ())
    for name, _ in existing:
        if name.lower() == key:
            return message  # the app set its own id: keep it
    return {**message, "headers": [*existing, header]}


def _template(route: object) -> str | None:
    # Starlette keeps the template without convertors in path_format ("/users/{id}").
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else None


def _mount_prefix(routes: object, target: object, _depth: int = 0) -> str | None:
    if not isinstance(routes, list) or _depth > 16:
        return None
    for route in routes:
        if route is target:
            return ""
        children = getattr(route, "routes", None)
        if children:
            found = _mount_prefix(children, target, _depth + 1)
            if found is not None:
                host = getattr(route, "host_format", None)
                if isinstance(host, str):  # Host("{sub}.example.com"): one series per host
                    return host + found
                mount = _template(route) or ""
                return mount.removesuffix("/{path}") + found
    return None
