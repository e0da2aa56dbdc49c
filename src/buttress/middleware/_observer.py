"""The sans-IO request observer under every middleware shell (ASGI, WSGI, Django).

A shell reads the protocol (scope, environ, request) into an :class:`Exchange`, then calls
:meth:`Observer.begin` when the request arrives, :meth:`Observer.finish` when its response
body ends (or the app failed) and :meth:`Observer.release` when control leaves the
middleware. All per-request state lives in that exchange, which the shell keeps in local
variables: nothing request-scoped is ever stored on the observer, so one instance serves
any number of concurrent requests.

The observer does no I/O of its own beyond what its collaborators do (the tracer, the
Prometheus children, the access logger) and reads time from an injected clock.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import CarrierT, Getter
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, Status, StatusCode

from .._baggage import bounded, without
from .._deadline import _DEADLINE, bind_deadline
from .._deadline_header import parse_deadline
from .._errors import ConfigurationError
from .._http import DEFAULT_REDACT_QUERY, REDACTED, Redactor
from .._http import status_label as status_label_of
from .._trust import ANY, ContinueTrace, TrustOption, check_continue_trace, check_trust
from ..telemetry import _names as names
from ..telemetry._correlation import (
    MAX_LENGTH,
    accept_correlation_id,
    correlation_id,
    is_valid_correlation_id,
)
from ..telemetry._http_env import http_environment
from ..telemetry._sampling import SpanStarter
from ..telemetry._slo import SLOLike, buckets_with_thresholds

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._health import Health
    from ._metrics import HTTPServerMetrics
    from ._shedding import Admission, Verdict

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_REDACT_HEADERS",
    "Exchange",
    "Observer",
    "SLOLike",
    "is_server_span",
    "merge_buckets",
    "split_host",
]

DEFAULT_EXCLUDE: Final = ("/health", "/healthz", "/livez", "/readyz", "/metrics")
DEFAULT_REDACT_HEADERS: Final = frozenset(
    ("authorization", "cookie", "proxy-authorization", "set-cookie", "x-api-key", "x-auth-token")
)
_EMPTY: Final[Mapping[str, str]] = {}
_MAX_RECORDED = 1024  # longest header/query value put on a span or log line
_MAX_CACHED_HOSTS = 256

access_logger = logging.getLogger("buttress.access")


def merge_buckets(buckets: Iterable[float], slos: Iterable[SLOLike] = ()) -> tuple[float, ...]:
    """``buckets_with_thresholds`` over checked values: every boundary and threshold positive.

    A threshold that is a bucket boundary makes the latency SLI an exact bucket count
    rather than an interpolation.
    """
    slos = tuple(slos)
    for slo in slos:
        if slo.threshold is not None:
            _positive_seconds(slo.threshold, "SLO threshold")
    merged = buckets_with_thresholds(slos, [_positive_seconds(b, "bucket") for b in buckets])
    if not merged:
        raise ConfigurationError("buckets must name at least one boundary")
    return merged


def _positive_seconds(value: object, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{what} must be a positive finite number of seconds: {value!r}")
    return float(value)


def split_host(host: str) -> tuple[str | None, int | None]:
    """``(address, port)`` from a Host header value; IPv6 literals keep no brackets."""
    host = host.strip()
    if not host:
        return None, None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None, None
        address, rest = host[1:end], host[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        address, port_text = host.split(":")
    else:
        address, port_text = host, ""
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return address[:_MAX_RECORDED] or None, port


class Exchange:
    """One request's state, held by the shell in local variables (never on the observer).

    The state every request starts with is declared on the class: a request stores only
    what it sets (a dozen fields, where storing all of them cost more than the rest of
    building it), and reads the defaults of the others.
    """

    # The request as the shell read it (the constructor sets these).
    method: str
    path: str
    query: str
    scheme: str
    protocol: str
    observed: bool
    method_original: str | None
    host: str | None
    server: tuple[str, int | None] | None
    client_address: str | None
    user_agent: str | None
    headers: Mapping[str, str]
    # Filled in as the request goes: class defaults until then.
    client_port: int | None = None
    request_size: int | None = None  # bytes of the request body, when known
    response_headers: Mapping[str, str] = _EMPTY
    start = 0.0
    request_id: str | None = None
    status = 0
    size = 0
    error: BaseException | None = None
    disconnected = False
    finished = False
    trusted = False  # whether the sender may steer the request (begin() decides)
    span: trace.Span | None = None
    # The request's trace context with its span current, as begin() attached it: a shell
    # that runs the app again later (a WSGI body's generator) attaches this same one.
    context: otel_context.Context | None = None
    trace_id: str | None = None  # the span's trace id in hex, once formatted
    owns_span = True  # False when enriching a server span someone else started
    metrics: HTTPServerMetrics | None = None  # the instruments begin() counted in
    admission: Verdict | None = None  # set by admission control, when configured
    tokens: tuple[Token[str | None] | None, object | None, Token[float | None] | None] = (
        None,
        None,
        None,
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        scheme: str,
        protocol: str,
        observed: bool,
        method_original: str | None = None,
        host: str | None = None,
        server: tuple[str, int | None] | None = None,
        client_address: str | None = None,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.method_original = method_original
        self.path = path
        self.query = query
        self.scheme = scheme
        self.protocol = protocol
        self.observed = observed
        self.host = host
        self.server = server
        self.client_address = client_address
        self.user_agent = user_agent
        self.headers = headers if headers is not None else _EMPTY


class Observer:
    """Configuration shared by every request, plus the begin/finish/release steps.

    Everything that can be decided once (header names, exclusions, buckets, instruments,
    the tracer) is decided here at construction time.
    """

    def __init__(
        self,
        *,
        service: str | None = None,
        request_id_header: str | None = names.REQUEST_ID_HEADER,
        deadline_header: str | None = names.DEADLINE_HEADER,
        tracing: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        metrics: bool = True,
        metrics_registry: CollectorRegistry | None = None,
        buckets: Iterable[float] = names.DURATION_BUCKETS,
        slos: Iterable[SLOLike] | None = None,
        access_log: bool = True,
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        exclude_prefixes: Iterable[str] = (),
        redact_query_keys: Iterable[str] = DEFAULT_REDACT_QUERY,
        redact_headers: Iterable[str] = DEFAULT_REDACT_HEADERS,
        capture_headers: Iterable[str] = (),
        metrics_path: str | None = None,
        error_response: bool = True,
        trusted_peers: TrustOption = None,
        continue_trace: ContinueTrace = "trusted",
        metrics_token: str | None = None,
        metrics_networks: Iterable[str] | None = None,
        metrics_max_age: float | timedelta = 1.0,
        clock: Callable[[], float] = time.perf_counter,
        frameworks: tuple[str, ...] = (),
        admission: Admission | None = None,
        health: Health | None = None,
    ) -> None:
        # The access line names the service as its spans' resource does: like configure(),
        # OTEL_SERVICE_NAME wins over the name in code.
        self.service = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service
        # Who may steer a request (docs/security.md): nobody unless configured.
        self.trusted_peers = check_trust(trusted_peers)
        self.continue_trace = check_continue_trace(continue_trace)
        peers = self.trusted_peers
        self.secret_header = peers.header if peers is not None and peers != ANY else None
        self.secret_key = self.secret_header.encode() if self.secret_header else None
        self.request_id_header = _header_option(request_id_header, "request_id_header")
        self.request_id_key = request_id_header.lower().encode() if request_id_header else None
        self.deadline_header = _header_option(deadline_header, "deadline_header")
        self.deadline_key = deadline_header.lower().encode() if deadline_header else None
        self.spans: SpanStarter | None = (
            SpanStarter("buttress", tracer_provider=tracer_provider) if tracing else None
        )
        if slos is None:  # the SLOs declared for the service, if configure() was given any
            from ..telemetry._configure import configured_slos

            slos = configured_slos()
        self.buckets = merge_buckets(buckets, slos)
        # Without a registry of its own, the middleware records into the one configure()
        # chose (as the transports and resilience listeners do), even when that choice is
        # made after the middleware was built: ``_bound`` pairs the instruments with the
        # registry they live in (one tuple, swapped whole: safe across threads), checked
        # against ``_follow()`` once per request (one call, one comparison).
        self.registry = metrics_registry
        self._bound: tuple[CollectorRegistry, HTTPServerMetrics] | None = None
        self._follow: Callable[[], CollectorRegistry] | None = None
        if metrics:
            from ..telemetry._metrics import target_registry  # prometheus_client: only if used

            if metrics_registry is None:
                self._follow = target_registry
            self._bind(metrics_registry if metrics_registry is not None else target_registry())
        self.access_log = access_log
        # The OTEL_* variables of the OpenTelemetry instrumentations, for what was not given.
        env = http_environment(frameworks)
        self.exclude_patterns: tuple[re.Pattern[str], ...] = ()
        if env.excluded is not None and exclude is DEFAULT_EXCLUDE and not exclude_prefixes:
            exclude, self.exclude_patterns = (), env.excluded
        capture_headers = tuple(capture_headers)
        if not capture_headers and env.request_headers is not None:
            capture_headers = env.request_headers
        if env.sanitize is not None:  # adds to the redacted names, never replaces them
            redact_headers = (*redact_headers, *env.sanitize)
        self.capture_response_headers = env.response_headers or ()
        self.exclude = frozenset(_path_option(p, "exclude") for p in exclude)
        self.exclude_prefixes = tuple(_path_option(p, "exclude_prefixes") for p in exclude_prefixes)
        self._match_more = bool(self.exclude_patterns or self.exclude_prefixes)
        self.redactor = Redactor(redact_query_keys)
        self.redact_headers = frozenset(h.lower() for h in redact_headers)
        if self.secret_header is not None:  # the shared secret is never recorded
            self.redact_headers |= {self.secret_header}
        self.capture_headers = tuple(h.lower() for h in capture_headers)
        self.metrics_path = None if metrics_path is None else _path_option(metrics_path, "path")
        if self.metrics_path is None and (
            metrics_token is not None or metrics_networks is not None
        ):
            raise ConfigurationError("metrics_token and metrics_networks need a metrics_path")
        from ._endpoint import MetricsEndpoint

        self.metrics_endpoint = (
            None
            if self.metrics_path is None
            else MetricsEndpoint(
                metrics_registry,
                token=metrics_token,
                networks=metrics_networks,
                max_age=metrics_max_age,
            )
        )
        self.error_response = error_response
        self.clock = clock
        self._hosts: dict[str, tuple[str | None, int | None]] = {}
        # Overload protection and health endpoints: only imported when configured.
        self.admission: Admission | None = None
        if admission is not None:
            from ._shedding import check_admission

            self.admission = check_admission(admission)
        self.health: Health | None = None
        if health is not None:
            from ._health import check_health

            self.health = check_health(health)
        self._fields: tuple[object, frozenset[bytes] | None, tuple[str, ...] | None] = (
            None,
            None,
            None,
        )

    def _bind(self, registry: CollectorRegistry) -> tuple[CollectorRegistry, HTTPServerMetrics]:
        from ._metrics import metrics_for

        bound = self._bound = (registry, metrics_for(registry, self.buckets))
        return bound

    def metrics_registry(self) -> CollectorRegistry | None:
        """The registry this request's metrics go to (``None`` with ``metrics=False``)."""
        if self._bound is None:
            return None
        follow = self._follow
        return follow() if follow is not None else self._bound[0]

    def excluded(self, path: str) -> bool:
        """Exact paths, or prefixes: ``/health`` never drops ``/api/healthcare``."""
        if path in self.exclude:
            return True
        if not self._match_more:  # neither patterns nor prefixes: one set look-up
            return False
        if self.exclude_patterns and any(p.search(path) for p in self.exclude_patterns):
            return True
        return bool(self.exclude_prefixes) and path.startswith(self.exclude_prefixes)

    def begin(
        self,
        exchange: Exchange,
        incoming_id: bytes | str | None,
        carrier: CarrierT,
        getter: Getter[CarrierT],
        traced: bool = True,
        deadline: bytes | str | None = None,
        peer_secret: bytes | str | None = None,
    ) -> None:
        """Start observing: correlation id bound, trace context attached, span started.

        The shell has filled ``method``, ``path`` and the other request fields first;
        ``traced`` says whether the request carries any header the propagator reads
        (see :meth:`propagation_fields`); ``deadline`` is the deadline header's value,
        bound as the request's deadline when it is well formed; ``peer_secret`` is the
        value of the trusted peers' secret header. The deadline, the incoming id and
        baggage are honoured only from a trusted peer, the trace as ``continue_trace`` says.
        """
        exchange.start = self.clock()
        peers = self.trusted_peers  # trusts(), inline: this is every request's path
        trusted = exchange.trusted = peers is not None and (
            peers == ANY or peers.trusts(exchange.client_address, peer_secret)
        )
        span: trace.Span | None = None
        otel_token: object | None = None
        spans = self.spans
        if spans is not None and exchange.observed:
            parent = otel_context.get_current()
            current = trace.get_current_span(parent)
            if current is not INVALID_SPAN and is_server_span(current):
                # Other instrumentation outside us (FastAPI's native telemetry, an
                # OpenTelemetry instrumentor) already started this request's server span:
                # enrich that one, so each request has one server span in one trace.
                span = current
                exchange.owns_span = False
            else:
                links: list[Link] | None = None
                if traced and (current is INVALID_SPAN or not current.get_span_context().is_valid):
                    # The client's trace, as far as continue_trace trusts it.
                    parent, links = self.parent_context(carrier, getter, trusted, parent)
                span = spans.start(exchange.method, parent, SpanKind.SERVER, links)
                context = exchange.context = trace.set_span_in_context(span, parent)
                otel_token = otel_context.attach(context)
            exchange.span = span
        if not trusted:
            incoming_id = deadline = None  # the client's word, not a peer's
        if self.request_id_key is None:
            exchange.request_id = None
            cid_token = None
        else:
            if incoming_id is not None and is_valid_correlation_id(
                incoming_id, max_length=MAX_LENGTH
            ):
                rid = accept_correlation_id(incoming_id, max_length=MAX_LENGTH)
            else:
                # No usable id from the client: the trace id serves, so logs, spans and
                # the response header share one value a support engineer can search for.
                ctx = span.get_span_context() if span is not None else None
                if ctx is not None and ctx.is_valid:
                    rid = exchange.trace_id = format(ctx.trace_id, "032x")
                else:
                    rid = accept_correlation_id(None)
            exchange.request_id = rid
            cid_token = correlation_id.set(rid)
        deadline_token = None
        if deadline is not None:
            left = parse_deadline(deadline)
            if left is not None:
                # The caller's remaining budget becomes ours: retry, timeout and the httpx
                # transport inside the handler honour it, and pass what is left on.
                deadline_token = bind_deadline(left)
        exchange.tokens = (cid_token, otel_token, deadline_token)
        bound = self._bound
        if bound is not None and exchange.observed:
            follow = self._follow
            if follow is not None and bound[0] is not follow():
                bound = self._bind(follow())
            # finish() records into these same instruments, whatever happens meanwhile.
            metrics = exchange.metrics = bound[1]
            metrics.active_inc(exchange.method)

    def trusts(self, client_address: str | None, peer_secret: bytes | str | None) -> bool:
        """Whether the sender may steer its request (``trusted_peers``; nobody by default)."""
        peers = self.trusted_peers
        return peers is not None and (peers == ANY or peers.trusts(client_address, peer_secret))

    def parent_context(
        self,
        carrier: CarrierT,
        getter: Getter[CarrierT],
        trusted: bool,
        base: otel_context.Context,
    ) -> tuple[otel_context.Context, list[Link] | None]:
        """The context to start the server span in, and links to an untrusted parent."""
        extracted = propagate.extract(carrier, getter=getter, context=base)
        mode = self.continue_trace
        if mode == "always" or (mode == "trusted" and trusted):
            # Baggage only from a trusted peer, and then within the W3C limits.
            return (bounded(extracted) if trusted else without(extracted)), None
        # Not continued: a new trace, linked to the one the client named so that it can
        # still be found, but neither its ids, its sampling decision nor baggage are ours.
        context = trace.get_current_span(extracted).get_span_context()
        return base, ([Link(context)] if context.is_valid else None)

    def propagation_fields(self) -> tuple[frozenset[bytes] | None, tuple[str, ...] | None]:
        """The headers the global propagator reads, as ASGI names and as CGI keys.

        ``(None, None)`` when the propagator declares no fields: then always extract.
        Cached per propagator object, so a propagator set after start-up is honoured.
        """
        textmap = propagate.get_global_textmap()
        cached = self._fields
        if cached[0] is not textmap:
            fields = sorted({field.lower() for field in textmap.fields})
            if fields:
                cached = (
                    textmap,
                    frozenset(f.encode("latin-1") for f in fields),
                    tuple(cgi_key(f) for f in fields),
                )
            else:
                cached = (textmap, None, None)
            self._fields = cached  # one tuple, swapped whole: safe across threads
        return cached[1], cached[2]

    def finish(self, exchange: Exchange, route: str | None) -> None:
        """Record the finished request: metrics, span attributes and end, access log.

        Called once, when the response body ended or the app failed; later calls are
        ignored, so a shell may call it from both its send path and its ``finally``.
        """
        if exchange.finished:
            return
        exchange.finished = True
        admitted = exchange.admission
        if admitted is not None:
            admitted.release(exchange)  # the app's work is over: its permit comes back
        if not exchange.observed:
            return
        duration = self.clock() - exchange.start
        status = exchange.status
        label = route if route is not None else names.ROUTE_UNMATCHED
        if exchange.disconnected and not status:
            status_label = names.STATUS_CLIENT_CLOSED
        elif status:
            # str(status) once per code, not per request (codes are bounded: 100-599).
            status_label = _STATUS_LABELS.get(status) or status_label_of(status)
        else:
            status_label = "500"
        if 0 < status < 500 and exchange.error is None and not exchange.disconnected:
            error_type = ""  # the usual request: nothing went wrong
        else:
            error_type = _error_type(exchange, status)
        span = exchange.span
        exemplar = None
        if span is not None:
            ctx = span.get_span_context()
            if ctx.trace_flags.sampled and ctx.is_valid:
                # Only a sampled trace is found.
                exemplar = exchange.trace_id or format(ctx.trace_id, "032x")
            if span.is_recording():
                self._close_span(span, exchange, route, status, error_type)
            if exchange.owns_span:
                span.end()  # an enriched span is ended by whoever started it
        metrics = exchange.metrics
        if metrics is not None:
            metrics.record(  # positional: the cheaper call, once per request
                exchange.method,
                label,
                status_label,
                duration,
                exchange.size,
                exemplar,
                exchange.request_size,
                error_type,
            )
        if self.access_log and access_logger.isEnabledFor(logging.INFO):
            self._log(exchange, label, status_label, duration, error_type)

    def release(self, exchange: Exchange) -> None:
        """Undo ``begin``'s context changes; call in the shell's ``finally``."""
        cid_token, otel_token, deadline_token = exchange.tokens
        if deadline_token is not None:
            _DEADLINE.reset(deadline_token)
        if otel_token is not None:
            otel_context.detach(otel_token)  # type: ignore[arg-type]
        if cid_token is not None:
            correlation_id.reset(cid_token)

    def _close_span(
        self,
        span: trace.Span,
        exchange: Exchange,
        route: str | None,
        status: int,
        error_type: str,
    ) -> None:
        method = exchange.method
        # The conventions name spans of unknown methods "HTTP", never the client's token.
        shown = "HTTP" if method == names.METHOD_OTHER else method
        if route is not None:
            span.update_name(f"{shown} {route}")
        elif shown != method:
            span.update_name(shown)
        attributes: dict[str, Any] = {
            names.ATTR_HTTP_REQUEST_METHOD: method,
            names.ATTR_URL_PATH: exchange.path[:_MAX_RECORDED],
            names.ATTR_URL_SCHEME: exchange.scheme,
            names.ATTR_NETWORK_PROTOCOL_VERSION: exchange.protocol,
        }
        if exchange.method_original is not None:
            attributes[names.ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = exchange.method_original[:64]
        if route is not None:
            attributes[names.ATTR_HTTP_ROUTE] = route
        if status:
            attributes[names.ATTR_HTTP_RESPONSE_STATUS_CODE] = status
        if exchange.query:
            attributes[names.ATTR_URL_QUERY] = self._query(exchange.query)
        # server.address and server.port as the client addressed them (Host header),
        # else the socket the server listens on.
        address, port = self._split_host(exchange.host) if exchange.host else (None, None)
        if address is None and exchange.server is not None:
            address, port = exchange.server
        elif address is not None and port is None:
            port = _DEFAULT_PORTS.get(exchange.scheme)  # a Host without a port: the scheme's
        if address:
            attributes[names.ATTR_SERVER_ADDRESS] = address
        if port:
            attributes[names.ATTR_SERVER_PORT] = port
        if exchange.client_address:
            attributes[names.ATTR_CLIENT_ADDRESS] = exchange.client_address
        if exchange.client_port:
            attributes[names.ATTR_CLIENT_PORT] = exchange.client_port
        if exchange.request_size is not None:
            attributes[names.ATTR_HTTP_REQUEST_BODY_SIZE] = exchange.request_size
        if exchange.user_agent:
            attributes[names.ATTR_USER_AGENT] = exchange.user_agent[:_MAX_RECORDED]
        if exchange.request_id is not None:
            attributes[names.ATTR_REQUEST_ID] = exchange.request_id
        attributes[names.ATTR_PEER_TRUSTED] = exchange.trusted
        if exchange.admission is not None:
            attributes.update(exchange.admission.span_attributes())
        for header, value in exchange.headers.items():
            recorded = REDACTED if header in self.redact_headers else value[:_MAX_RECORDED]
            attributes[f"http.request.header.{header}"] = (recorded,)
        for header, value in exchange.response_headers.items():
            recorded = REDACTED if header in self.redact_headers else value[:_MAX_RECORDED]
            attributes[f"http.response.header.{header}"] = (recorded,)
        error = exchange.error
        if error_type:
            attributes[names.ATTR_ERROR_TYPE] = error_type
        if error is not None:
            if exchange.owns_span or not _records_exceptions(span):
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, error_type))
        elif status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)

    def _split_host(self, host: str) -> tuple[str | None, int | None]:
        # Most requests name one of a few hosts: split each once. Hosts come from the
        # client, so the cache is bounded and anything past it is split every time.
        cache = self._hosts
        found = cache.get(host)
        if found is None:
            found = split_host(host)
            if len(cache) < _MAX_CACHED_HOSTS:
                cache[host] = found
        return found

    def _log(
        self,
        exchange: Exchange,
        route: str,
        status: str,
        duration: float,
        error_type: str,
    ) -> None:
        trace_id = span_id = None
        if exchange.span is not None:
            ctx = exchange.span.get_span_context()
            if ctx.is_valid:
                trace_id = format(ctx.trace_id, "032x")
                span_id = format(ctx.span_id, "016x")
        extra: dict[str, object] = {
            "method": exchange.method,
            "route": route,
            # The code as answered (a log line has no series to bound), else 499 or 500.
            "status": exchange.status or int(status),
            "duration_ms": round(duration * 1000.0, 3),
            "request_id": exchange.request_id,
            "trace_id": trace_id,
            "span_id": span_id,
            "path": exchange.path[:_MAX_RECORDED],
            "response_size": exchange.size,
        }
        if exchange.query:
            extra["query"] = self._query(exchange.query)
        if self.service is not None:
            extra["service"] = self.service
        if exchange.disconnected:
            extra["disconnected"] = True
        if error_type:
            extra["error_type"] = error_type
        if exchange.admission is not None:
            extra.update(exchange.admission.log_fields())
        access_logger.info(names.EVENT_ACCESS, extra=extra)

    def _query(self, query: str) -> str:
        return self.redactor(query)[:_MAX_RECORDED]

    def captured_headers(self, lookup: Callable[[str], str | None]) -> Mapping[str, str]:
        """The configured request headers present on this request, read via ``lookup``."""
        if not self.capture_headers:
            return _EMPTY
        found = {}
        for header in self.capture_headers:
            value = lookup(header)
            if value is not None:
                found[header] = value
        return found

    def captured_response_headers(self, headers: Iterable[tuple[str, str]]) -> Mapping[str, str]:
        """The configured response headers among ``headers`` (name, value pairs)."""
        wanted = self.capture_response_headers
        if not wanted:
            return _EMPTY
        found = {}
        for name, value in headers:
            lowered = name.lower()
            if lowered in wanted and lowered not in found:
                found[lowered] = value
        return found


def cgi_key(header: str) -> str:
    """The CGI name of an HTTP request header: ``X-Request-ID`` -> ``HTTP_X_REQUEST_ID``."""
    return "HTTP_" + header.upper().replace("-", "_")


_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_STATUS_LABELS: Final = {code: status_label_of(code) for code in range(100, 600)}


def is_server_span(span: trace.Span) -> bool:
    """Whether ``span`` is a recording server span someone else started for this request.

    Only SDK spans say their kind; a span that does not is never taken for a server span.
    """
    return span.is_recording() and getattr(span, "kind", None) is SpanKind.SERVER


def _records_exceptions(span: trace.Span) -> bool:
    # OpenTelemetry's instrumentations record the exceptions that reach them on their own
    # server span; recording the same one again would give it two exception events.
    scope = getattr(span, "instrumentation_scope", None)
    name = getattr(scope, "name", "")
    return isinstance(name, str) and name.startswith("opentelemetry.instrumentation.")


def _error_type(exchange: Exchange, status: int) -> str:
    """``error.type`` per the conventions: the exception's type, else why it failed, else ''."""
    if exchange.error is not None:
        return _qualname(exchange.error)
    if exchange.disconnected:
        return names.ERROR_CLIENT_DISCONNECT
    if status >= 500 or not status:  # no status: the app never answered, we say 500
        return str(status or 500)
    return ""


def _qualname(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _header_option(value: str | None, option: str) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not value or not value.isascii() or " " in value
    ):
        raise ConfigurationError(f"invalid {option} {value!r}")
    return value


def _path_option(value: object, option: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigurationError(f"{option} entries must be paths starting with '/': {value!r}")
    return value
