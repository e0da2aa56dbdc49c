"""Websocket connections through the ASGI middleware: id, span, metrics, one line on close.

The handshake gets the correlation id (on the ``websocket.accept`` headers); the connection
gets one server span (or enriches the one other instrumentation started), named
``WS {route}``, that ends when the connection closes, with the close code and the number of
messages each way; the access logger gets one ``websocket.connection`` line; metrics count
open connections, connection durations and messages by route template. A client cannot
grow the number of series: close codes and paths are never labels.

Per-connection state lives in one :class:`_Connection` held in local variables.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..telemetry import _names as names
from ..telemetry._correlation import (
    MAX_LENGTH,
    accept_correlation_id,
    correlation_id,
    is_valid_correlation_id,
)
from ._observer import Observer, _qualname, access_logger, is_server_span

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["observe_websocket"]

Message = Any
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Route = Callable[[], "str | None"]
_NORMAL_CLOSE = 1000
_NO_STATUS = 1005  # RFC 6455: the close frame carried no code
_MAX_RECORDED = 1024


class _Instruments:
    """Websocket metrics in one registry (prometheus_client's, so workers merge)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        route = (names.LABEL_ROUTE,)
        self.active = Gauge(
            names.WEBSOCKET_ACTIVE, "Open websocket connections.", route,
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.duration = Histogram(
            names.WEBSOCKET_DURATION, "Duration of websocket connections, accept to close.",
            route, registry=registry,
            buckets=(0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0),
        )  # fmt: skip
        self.messages = Counter(
            names.WEBSOCKET_MESSAGES, "Websocket messages.", (*route, names.LABEL_DIRECTION),
            registry=registry,
        )  # fmt: skip


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Instruments] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _instruments(registry: CollectorRegistry) -> _Instruments:
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = _Instruments(registry)
        return found


class _Connection:
    __slots__ = (
        "accepted",
        "close_code",
        "error",
        "label",
        "messages_in",
        "messages_out",
        "received",
        "sent",
        "start",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.accepted = False
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self.label = names.ROUTE_UNMATCHED
        self.messages_in = 0
        self.messages_out = 0
        self.received: Any = None  # metric children, bound once the route is known
        self.sent: Any = None


async def observe_websocket(
    observer: Observer,
    app: Callable[[Any, Receive, Send], Awaitable[None]],
    scope: Any,
    receive: Receive,
    send: Send,
    route: Route,
    carrier: list[tuple[bytes, bytes]],
    getter: Any,
) -> None:
    """Run one websocket connection through ``app``, observed."""
    path: str = scope["path"]
    if observer.excluded(path):
        await app(scope, receive, send)
        return
    conn = _Connection(observer.clock())
    span: trace.Span | None = None
    owns_span = True
    otel_token = None
    client = scope.get("client")
    secret_key = observer.secret_key
    secret = next((v for k, v in carrier if k == secret_key), None) if secret_key else None
    # As for HTTP requests: the handshake's id and trace are the client's word, honoured
    # only from a trusted peer (the trace as continue_trace says).
    trusted = observer.trusts(client[0] if client else None, secret)
    spans = observer.spans
    if spans is not None:
        current = trace.get_current_span()
        if is_server_span(current):
            span, owns_span = current, False
        else:
            parent = otel_context.get_current()
            links = None
            if not current.get_span_context().is_valid:
                parent, links = observer.parent_context(carrier, getter, trusted, parent)
            span = spans.start("WS", parent, SpanKind.SERVER, links)
            otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
    id_key = observer.request_id_key
    request_id = cid_token = None
    if id_key is not None:
        incoming = next((v for k, v in carrier if k == id_key), None) if trusted else None
        ctx = span.get_span_context() if span is not None else None
        if incoming is not None and is_valid_correlation_id(incoming, max_length=MAX_LENGTH):
            request_id = accept_correlation_id(incoming, max_length=MAX_LENGTH)
        elif ctx is not None and ctx.is_valid:
            request_id = format(ctx.trace_id, "032x")
        else:
            request_id = accept_correlation_id(None)
        cid_token = correlation_id.set(request_id)
    registry = observer.metrics_registry()
    instruments = _instruments(registry) if registry is not None else None

    async def observed_send(message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            conn.messages_out += 1
            if conn.sent is not None:
                conn.sent.inc()
        elif kind == "websocket.accept":
            conn.accepted = True
            label = route()
            conn.label = label if label is not None else names.ROUTE_UNMATCHED
            if instruments is not None:
                instruments.active.labels(conn.label).inc()
                conn.received = instruments.messages.labels(conn.label, names.DIRECTION_RECEIVED)
                conn.sent = instruments.messages.labels(conn.label, names.DIRECTION_SENT)
            if request_id is not None and id_key is not None:
                headers = list(message.get("headers", ()))
                if not any(k.lower() == id_key for k, _ in headers):
                    headers.append((id_key, request_id.encode("ascii")))
                message = {**message, "headers": headers}
        elif kind == "websocket.close" and conn.close_code is None:
            conn.close_code = message.get("code") or _NORMAL_CLOSE
        await send(message)

    async def observed_receive() -> Message:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            conn.messages_in += 1
            if conn.received is not None:
                conn.received.inc()
        elif kind == "websocket.disconnect" and conn.close_code is None:
            conn.close_code = message.get("code") or _NO_STATUS
        return message

    try:
        await app(scope, observed_receive, observed_send)
    except Exception as error:
        conn.error = error
        raise
    finally:
        try:
            _finish(observer, conn, scope, span, owns_span, request_id, instruments, route)
        finally:
            if otel_token is not None:
                otel_context.detach(otel_token)
            if cid_token is not None:
                correlation_id.reset(cid_token)


def _finish(
    observer: Observer,
    conn: _Connection,
    scope: Any,
    span: trace.Span | None,
    owns_span: bool,
    request_id: str | None,
    instruments: _Instruments | None,
    route: Route,
) -> None:
    duration = observer.clock() - conn.start
    if not conn.accepted:
        label = route()
        conn.label = label if label is not None else names.ROUTE_UNMATCHED
    if instruments is not None and conn.accepted:
        instruments.active.labels(conn.label).dec()
        instruments.duration.labels(conn.label).observe(duration)
    error_type = _qualname(conn.error) if conn.error is not None else ""
    if not conn.accepted and not error_type:
        error_type = names.ERROR_HANDSHAKE_REJECTED
    trace_id = span_id = None
    if span is not None:
        ctx = span.get_span_context()
        if ctx.is_valid:
            trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        if span.is_recording():
            if conn.label != names.ROUTE_UNMATCHED:
                span.update_name(f"WS {conn.label}")
                span.set_attribute(names.ATTR_HTTP_ROUTE, conn.label)
            attributes: dict[str, Any] = {
                names.ATTR_URL_PATH: scope["path"][:_MAX_RECORDED],
                names.ATTR_URL_SCHEME: scope.get("scheme", "ws"),
                names.ATTR_NETWORK_PROTOCOL_NAME: "websocket",
                names.ATTR_WEBSOCKET_RECEIVED: conn.messages_in,
                names.ATTR_WEBSOCKET_SENT: conn.messages_out,
            }
            if conn.close_code is not None:
                attributes[names.ATTR_WEBSOCKET_CLOSE_CODE] = conn.close_code
            if request_id is not None:
                attributes[names.ATTR_REQUEST_ID] = request_id
            if error_type:
                attributes[names.ATTR_ERROR_TYPE] = error_type
            span.set_attributes(attributes)
            if conn.error is not None:
                span.record_exception(conn.error)
                span.set_status(Status(StatusCode.ERROR, error_type))
        if owns_span:
            span.end()
    if observer.access_log and access_logger.isEnabledFor(logging.INFO):
        extra: dict[str, object] = {
            "route": conn.label,
            "path": scope["path"][:_MAX_RECORDED],
            "duration_ms": round(duration * 1000.0, 3),
            "request_id": request_id,
            "trace_id": trace_id,
            "span_id": span_id,
            "close_code": conn.close_code,
            "messages_received": conn.messages_in,
            "messages_sent": conn.messages_out,
        }
        if observer.service is not None:
            extra["service"] = observer.service
        if error_type:
            extra["error_type"] = error_type
        access_logger.info(names.EVENT_WEBSOCKET, extra=extra)
