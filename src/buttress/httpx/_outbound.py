"""What the sync and async httpx transports share: options, per-host policies, attempts.

The twins in ``_transport.py`` and ``_transport_async.py`` only differ in how they call
the inner transport and close a response. Everything else happens here, without I/O:
which requests may be retried or hedged, the per-host copies of the retry, hedge and
throttle the transport was given (each host its own budget, estimate and window), and
one :class:`Attempt` per request sent (a client span, propagated headers, the deadline
header, the attempt's timeout capped to the time left, the client metrics).

Per-call state lives in a :class:`Call` made by the transport for each request, and per
attempt in an :class:`Attempt`, both held in the transport's local variables: nothing
request-scoped is stored on the transport, so one instance serves any number of
concurrent requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import Bulkhead, CircuitBreaker, Policy, retry
from .._args import check_name
from .._baggage import bounded, without
from .._deadline import _DEADLINE, Clock
from .._deadline_header import format_deadline
from .._errors import ConfigurationError, DeadlineExceeded
from .._events import Registry, TimeoutExpired, default_registry
from .._http import DEFAULT_REDACT_QUERY, Redactor, normalise_method, status_label
from .._retry_after import parse_retry_after
from .._trust import InternalHosts, PropagateTrace, check_propagate_trace
from .._version import __version__
from ..strategies import Hedge, Retry, Strategy, Throttle
from ..telemetry import _names as names
from ..telemetry._correlation import correlation_id
from ..telemetry._metrics import target_registry
from ..telemetry._sampling import SpanStarter
from ._client_metrics import ClientMetrics, client_metrics_for

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider
    from prometheus_client import CollectorRegistry

__all__ = [
    "BreakerOption",
    "BulkheadOption",
    "DEFAULT_RETRY",
    "DEFAULT_RETRY_ON",
    "HedgeOption",
    "RetryOption",
    "ThrottleOption",
    "DEFAULT_RETRY_STATUSES",
    "IDEMPOTENT_METHODS",
    "Attempt",
    "Call",
    "Host",
    "FailedStatus",
    "Outbound",
    "full_url",
]

RetryOption: TypeAlias = "Retry | Callable[[str], Retry] | None"
"""One retry copied per host (each copy its own budget), a factory called with each host's
policy name, or none (one attempt per request)."""
HedgeOption: TypeAlias = "Hedge | Callable[[str], Hedge] | None"
"""One hedge copied per host, a factory called with each host's policy name, or none."""
ThrottleOption: TypeAlias = "Throttle | Callable[[str], Throttle] | None"
"""One throttle copied per host (each its own window), a factory, or none."""
BreakerOption: TypeAlias = "CircuitBreaker | Callable[[str], CircuitBreaker] | None"
"""One breaker for every host, a factory called with each host's policy name, or none."""
BulkheadOption: TypeAlias = "Bulkhead | Callable[[str], Bulkhead] | None"
"""One bulkhead for every host, a factory called with each host's policy name, or none."""

IDEMPOTENT_METHODS: Final = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))
IDEMPOTENCY_KEY: Final = "idempotency-key"
DEFAULT_RETRY_STATUSES: Final = (429, 502, 503, 504)
# Failures where the server either never got the request or dropped the connection: safe
# to try again for an idempotent request. Read timeouts are not among them: the server
# is slow, and sending it the same work again would make it slower.
DEFAULT_RETRY_ON: Final[tuple[type[Exception], ...]] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


# What the transports retry unless given a retry of their own: three attempts within 30 s,
# a server's Retry-After honoured up to 5 s (a longer one goes back to the caller).
def _default_retry(clock: Clock = time.monotonic, events: Registry | None = None) -> Retry:
    return retry(
        on=DEFAULT_RETRY_ON,
        attempts=3,
        deadline=30.0,
        retry_after_max=5.0,
        name="httpx",
        clock=clock,
        events=events,
    )


DEFAULT_RETRY: Final = _default_retry()
# Hosts beyond this many share one policy (and one server_address label), so a client
# calling arbitrary hosts cannot grow the transport's state or the number of series.
MAX_HOSTS: Final = 1000
OTHER_HOSTS: Final = "_OTHER"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The timeout phase each httpx timeout exception reports.
_PHASES: Final[tuple[tuple[type[httpx.TimeoutException], str], ...]] = (
    (httpx.ConnectTimeout, "connect"),
    (httpx.ReadTimeout, "read"),
    (httpx.WriteTimeout, "write"),
    (httpx.PoolTimeout, "pool"),
)
_NOT_CAPPED: Final[frozenset[str]] = frozenset()
_LEAST_TIMEOUT: Final = 0.001
_BAGGAGE: Final = "baggage"
S = TypeVar("S")


def full_url(url: httpx.URL, redactor: Redactor | None = None) -> str:
    """``url`` for ``url.full``: no userinfo, no fragment, sensitive query values redacted."""
    port = url.port
    netloc = url.host if port is None else f"{url.host}:{port}"
    if ":" in url.host:  # an IPv6 literal
        netloc = f"[{url.host}]" if port is None else f"[{url.host}]:{port}"
    target = url.raw_path.decode("ascii")
    path, mark, query = target.partition("?")
    if not mark:
        return f"{url.scheme}://{netloc}{path}"
    return f"{url.scheme}://{netloc}{path}?{(redactor or _default_redactor)(query)}"


_default_redactor = Redactor()


class FailedStatus(httpx.HTTPStatusError):
    """A 5xx answer, raised through the breaker so that it counts as a failure.

    The transport catches it right outside the breaker and hands the response on: the
    caller never sees it. It is an ``httpx.HTTPStatusError``, so a breaker built with
    ``failure_on=httpx.HTTPStatusError`` counts it too.
    """


class Call:
    """One request through the transport: how many attempts were sent, the last answer."""

    __slots__ = ("host", "previous", "request", "sent")

    def __init__(self, request: httpx.Request, host: Host) -> None:
        self.request = request
        self.host = host
        self.sent = 0
        self.previous: httpx.Response | None = None

    def fork(self) -> Call:
        """A twin for one of a hedge's racing attempts, with a request of its own.

        Each attempt writes its own headers (traceparent, deadline) and timeouts, so racing
        attempts cannot share one request. The body is a ``ByteStream`` (only replayable
        requests are hedged), which any number of sends may read.
        """
        request = self.request
        twin = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            stream=request.stream,
            extensions=dict(request.extensions),
        )
        call = Call(twin, self.host)
        call.sent = self.sent
        self.sent += 1
        return call


class Attempt:
    """One request sent: its span, its context token, its start and its metric labels.

    ``capped`` names the timeout phases the deadline shortened: a timeout in one of them
    is the caller's budget running out, not the dependency's slowness.
    """

    __slots__ = ("active", "capped", "left", "method", "span", "start", "token")

    def __init__(
        self,
        span: Span,
        token: object,
        start: float,
        method: str,
        active: Any,
        capped: frozenset[str] = _NOT_CAPPED,
        left: float = 0.0,
    ) -> None:
        self.span = span
        self.token = token
        self.start = start
        self.method = method
        self.active = active
        self.capped = capped
        self.left = left


class Host:
    """The policy of one destination host: its retry (with its own budget), hedge and guard.

    ``retry`` is ``None`` when the transport makes one attempt per request, ``hedge``
    when it does not hedge. ``guard`` is the breaker, the bulkhead and the throttle
    around each attempt sent (a ``Policy`` of those given, one of them, or ``None``).
    """

    __slots__ = ("address", "guard", "hedge", "internal", "name", "retry")

    def __init__(
        self,
        address: str,
        name: str,
        retry: Retry | None,
        guard: Strategy | None,
        internal: bool | None = None,
        hedge: Hedge | None = None,
    ) -> None:
        self.address = address
        self.name = name
        self.retry = retry
        self.guard = guard
        self.hedge = hedge
        self.internal = internal  # None: hosts past MAX_HOSTS share it, decided per request


class Outbound:
    """The options of a transport and the work around each attempt (see the module doc)."""

    def __init__(
        self,
        *,
        retry: RetryOption,
        retry_statuses: Collection[int],
        hedge: HedgeOption,
        throttle: ThrottleOption,
        breaker: BreakerOption,
        bulkhead: BulkheadOption,
        name: str,
        request_id_header: str | None,
        tracer_provider: TracerProvider | None,
        metrics_registry: CollectorRegistry | None,
        events: Registry | None,
        clock: Clock,
        discard: Callable[[httpx.Response], object],
        internal_hosts: Iterable[str] = (),
        propagate_trace: PropagateTrace = "internal",
        redact_query_keys: Iterable[str] = DEFAULT_REDACT_QUERY,
    ) -> None:
        self.name = check_name(name)
        # The propagation boundary (docs/security.md): our ids, budget and baggage go to
        # internal hosts only; trace context where propagate_trace says.
        self.internal_hosts = InternalHosts(internal_hosts)
        self.propagate_trace = check_propagate_trace(propagate_trace)
        self.redactor = Redactor(redact_query_keys)
        # Checked once, here: bad options fail at construction, not on the first request
        # to each host. Each host gets its own copy (its own budget, window, estimate).
        if retry is DEFAULT_RETRY and (clock is not time.monotonic or events is not None):
            # The default retry runs on the transport's own clock and event registry.
            retry = _default_retry(clock, events)
        self._retry = _strategy_option(retry, Retry, "retry")
        self._hedge = _strategy_option(hedge, Hedge, "hedge")
        self._throttle = _strategy_option(throttle, Throttle, "throttle")
        self._breaker = _strategy_option(breaker, CircuitBreaker, "breaker")
        self._bulkhead = _strategy_option(bulkhead, Bulkhead, "bulkhead")
        self._discard = discard
        statuses = frozenset(retry_statuses)
        bad = [s for s in statuses if not isinstance(s, int) or not 100 <= s <= 599]
        if bad:
            raise ConfigurationError(f"retry_statuses must be HTTP status codes, got {bad[0]!r}")
        self.statuses = statuses
        if request_id_header is not None and (
            not isinstance(request_id_header, str) or not request_id_header.isascii()
        ):
            raise ConfigurationError(
                f"request_id_header must be an ASCII header name or None, got {request_id_header!r}"
            )
        self.request_id_header = request_id_header
        self.events = events if events is not None else default_registry
        self.clock = clock
        self._spans = SpanStarter("buttress.httpx", __version__, tracer_provider)
        self._metrics_registry = metrics_registry
        self._metrics: ClientMetrics | None = None
        self._hosts: dict[tuple[str, int | None], Host] = {}
        self._lock = threading.Lock()

    # --- decisions ---------------------------------------------------------------------

    def _retry_result(self, cap: float) -> Callable[[httpx.Response], bool]:
        statuses = self.statuses

        def retry_result(response: httpx.Response) -> bool:
            if response.status_code not in statuses:
                return False
            # A server asking for a longer wait than this retry takes from a server is
            # not retried early: its answer goes back to the caller as it is.
            wait = parse_retry_after(response.headers.get("retry-after"))
            return wait is None or wait <= cap

        return retry_result

    def _no_answer(self, response: httpx.Response) -> bool:
        """For the hedge: an answer the retry would retry is none; another attempt may do."""
        return response.status_code in self.statuses

    @staticmethod
    def retryable(request: httpx.Request) -> bool:
        """Whether ``request`` may be sent twice: idempotent (or keyed) and replayable."""
        if request.method not in IDEMPOTENT_METHODS and IDEMPOTENCY_KEY not in request.headers:
            return False
        # A streamed body (a generator, a file) cannot be sent a second time.
        return isinstance(request.stream, httpx.ByteStream)

    def host(self, request: httpx.Request) -> Host:
        """The policy of the request's destination, made on first use."""
        url = request.url
        key = (url.host, url.port)
        found = self._hosts.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._hosts.get(key)
            if found is None:
                if len(self._hosts) >= MAX_HOSTS:
                    key = (OTHER_HOSTS, None)
                    found = self._hosts.get(key)
                if found is None:
                    found = self._hosts[key] = self._new_host(key[0], key[1])
        return found

    def _new_host(self, address: str, port: int | None) -> Host:
        where = address if port is None else f"{address}:{port}"
        name = f"{self.name}:{where}"
        breaker = _per_host(self._breaker, CircuitBreaker, name)
        bulkhead = _per_host(self._bulkhead, Bulkhead, name)
        throttle = _per_host(self._throttle, Throttle, name)
        if throttle is not None:
            throttle = throttle.copy(name=name, on_result=_refused)
        # Innermost, so it counts only what is sent: its Throttled (a RateLimited) is a
        # caller-side refusal that the breaker outside does not count.
        members = [m for m in (breaker, bulkhead, throttle) if m is not None]
        guard: Strategy | None = None
        if len(members) == 1:
            guard = members[0]
        elif members:
            guard = Policy(*members)
        retrying = _per_host(self._retry, Retry, name)
        if retrying is not None:
            retrying = retrying.copy(
                name=name,
                on_result=self._retry_result(retrying.retry_after_max),
                retry_after=_retry_after,
            )
            if retrying.attempts == 1:
                retrying = None
        hedging = _per_host(self._hedge, Hedge, name)
        if hedging is not None:
            # Hedges spend the host's retry budget too: retries and hedges together
            # stay within it, however many of each a failing host asks for.
            # A quick 503 is no answer while a slower replica may still give one.
            hedging = hedging.copy(
                name=name, discard=self._discard, spend_from=retrying, on_result=self._no_answer
            )
        internal = None if address == OTHER_HOSTS else address in self.internal_hosts
        return Host(address, name, retrying, guard, internal, hedging)

    def refuse_if_late(self, host: Host) -> None:
        """Raise ``DeadlineExceeded`` when the context's deadline has already passed."""
        deadline = _DEADLINE.get()
        if deadline is None:
            return
        late = self.clock() - deadline
        if late >= 0:
            self._client_metrics().deadline_exceeded(host.address, names.DEADLINE_SPENT)
            if self.events.active:
                self.events.emit(TimeoutExpired(host.name, 0.0))
            raise DeadlineExceeded(
                f"{host.name}: the deadline passed {late:.3f}s before the request was sent",
                name=host.name,
                timeout=0.0,
            )

    # --- around each attempt -------------------------------------------------------------

    def _client_metrics(self) -> ClientMetrics:
        # Without a registry of its own, the transport follows the one configure() chose,
        # even when configure() runs after the transport was built.
        registry = self._metrics_registry
        if registry is None:
            registry = target_registry()
        metrics = self._metrics
        if metrics is None or metrics.registry is not registry:
            metrics = self._metrics = client_metrics_for(registry)
        return metrics

    def begin(self, call: Call) -> Attempt:
        """Before sending: start the span, write the headers, cap the timeout.

        The transport has called :meth:`refuse_if_late` just before (outside the breaker,
        so that a spent budget is not counted as the upstream's failure).
        """
        request = call.request
        host = call.host
        # Checked again here, inside the breaker and bulkhead: waiting for them may have
        # spent the budget, and an attempt sent with no time left would fail as an I/O
        # error (a zero timeout makes the socket non-blocking), blamed on the upstream.
        self.refuse_if_late(host)
        deadline = _DEADLINE.get()
        resend = call.sent
        call.sent = resend + 1
        label, original = normalise_method(request.method)
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        attributes: dict[str, Any] = {
            names.ATTR_HTTP_REQUEST_METHOD: label,
            names.ATTR_SERVER_ADDRESS: url.host,
        }
        if port is not None:
            attributes[names.ATTR_SERVER_PORT] = port
        name = "HTTP" if label == names.METHOD_OTHER else label
        span = self._spans.start(name, None, SpanKind.CLIENT, None, attributes)
        recording = span.is_recording()
        context = trace.set_span_in_context(span)
        token = otel_context.attach(context)
        headers = request.headers
        internal = host.internal
        if internal is None:
            internal = url.host in self.internal_hosts
        self._propagate(headers, context, internal)
        id_header = self.request_id_header
        request_id = None
        if id_header is not None:
            request_id = correlation_id.get()
            if request_id is not None and internal and id_header not in headers:
                headers[id_header] = request_id
        if recording:
            # One call: the SDK takes its lock and checks the limits once per call.
            later: dict[str, Any] = {names.ATTR_URL_FULL: full_url(url, self.redactor)}
            if original is not None:
                later[names.ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = original
            if resend:
                later[names.ATTR_HTTP_RESEND_COUNT] = resend
            if request_id is not None:
                later[names.ATTR_REQUEST_ID] = request_id
            span.set_attributes(later)
        capped = _NOT_CAPPED
        left = 0.0
        if deadline is not None:
            left = deadline - self.clock()
            if internal:
                headers[names.DEADLINE_HEADER] = format_deadline(left)
            # A budget of a few microseconds gives a timeout, not a non-blocking socket.
            capped = _cap_timeout(request, max(left, _LEAST_TIMEOUT))
        active = self._client_metrics().active(label, host.address)
        active.inc()
        return Attempt(span, token, time.perf_counter(), label, active, capped, left)

    def _propagate(self, headers: httpx.Headers, context: Any, internal: bool) -> None:
        """Trace context and baggage, as far as the destination may see them."""
        mode = self.propagate_trace
        if internal:
            if mode == "none":  # baggage only
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=bounded(context))
                if _BAGGAGE in carrier:
                    headers[_BAGGAGE] = carrier[_BAGGAGE]
            else:
                propagate.inject(headers, context=bounded(context))
        elif mode == "all":
            propagate.inject(headers, context=without(context))

    def answered(self, attempt: Attempt, host: Host, response: httpx.Response) -> None:
        """After a response arrived (headers read; the body may still be streaming)."""
        status = response.status_code
        span = attempt.span
        if span.is_recording():
            span.set_attribute(names.ATTR_HTTP_RESPONSE_STATUS_CODE, status)
            if status >= 400:  # for a client span, 4xx is an error too (semconv)
                span.set_attribute(names.ATTR_ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
        self._end(attempt, host, status_label(status))

    def failed(self, attempt: Attempt, host: Host, error: BaseException) -> DeadlineExceeded | None:
        """After the inner transport raised: what to raise instead, or ``None``.

        A timeout in a phase the deadline had shortened is the caller's budget running
        out: it becomes ``DeadlineExceeded`` (which breakers ignore and retry never
        retries), is counted apart and kept out of the client duration histogram.
        """
        span = attempt.span
        cause = None
        if isinstance(error, httpx.TimeoutException):
            phase = next((p for kind, p in _PHASES if isinstance(error, kind)), None)
            deadline_hit = phase is not None and phase in attempt.capped
            cause = names.TIMEOUT_CAUSE_DEADLINE if deadline_hit else names.TIMEOUT_CAUSE_DEPENDENCY
        elif (
            isinstance(error, httpx.TransportError)
            and attempt.capped
            and (deadline := _DEADLINE.get()) is not None
            and self.clock() >= deadline
        ):
            # An I/O error once the budget had run out (a socket given the last
            # millisecond): the caller's time is up whatever the upstream did.
            cause = names.TIMEOUT_CAUSE_DEADLINE
        replaced = None
        if cause == names.TIMEOUT_CAUSE_DEADLINE:
            left = max(attempt.left, 0.0)
            replaced = DeadlineExceeded(
                f"{host.name}: the deadline ran out {left:.3f}s into the attempt "
                f"({type(error).__name__})",
                name=host.name,
                timeout=left,
            )
        if span.is_recording():
            shown = replaced if replaced is not None else error
            span.set_attribute(names.ATTR_ERROR_TYPE, type(shown).__name__)
            if cause is not None:
                span.set_attribute(names.ATTR_TIMEOUT_CAUSE, cause)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(shown).__name__}: {shown}"))
        self._end(attempt, host, "", deadline=replaced is not None)
        return replaced

    def _end(self, attempt: Attempt, host: Host, status: str, *, deadline: bool = False) -> None:
        duration = time.perf_counter() - attempt.start
        attempt.active.dec()
        metrics = self._client_metrics()
        if deadline:  # our budget, not the dependency's latency
            metrics.deadline_exceeded(host.address, names.DEADLINE_CUT)
        else:
            metrics.observe(
                attempt.method, host.address, status, duration, attempt.span.get_span_context()
            )
        try:
            attempt.span.end()
        finally:
            otel_context.detach(attempt.token)  # type: ignore[arg-type]


def _strategy_option(option: object, kind: type, what: str) -> Any:
    """``option`` checked: an instance of ``kind``, a factory taking a name, or ``None``."""
    if option is None or isinstance(option, kind):
        return option
    if callable(option) and not isinstance(option, Strategy):
        return option
    raise ConfigurationError(
        f"{what} must be a {kind.__name__}, a factory taking a name, or None; got {option!r}"
    )


def _per_host(option: Any, kind: type[S], name: str) -> S | None:
    """The host's member: the instance given, or what the factory makes for ``name``.

    An instance is shared as it is (one breaker for every host, say); the caller copies
    retries, hedges and throttles per host, with the transport's own hooks.
    """
    if option is None:
        return None
    if isinstance(option, kind):
        return option
    member = option(name)
    if not isinstance(member, kind):
        raise ConfigurationError(f"the {kind.__name__} factory returned {member!r} for {name!r}")
    return member


def _refused(response: httpx.Response) -> bool:
    """For the throttle: the answers that mean the upstream refused the work."""
    status = response.status_code
    return status == 429 or status >= 500


def _retry_after(outcome: object) -> str | None:
    if isinstance(outcome, httpx.Response):
        value: str | None = outcome.headers.get("retry-after")
        return value
    return None


def _cap_timeout(request: httpx.Request, left: float) -> frozenset[str]:
    """Shorten every phase of the attempt's timeout to the time ``left``.

    Returns the phases that the deadline made shorter than they were configured.
    """
    left = max(left, 0.0)
    timeout = request.extensions.get("timeout")
    capped: dict[str, float | None] = {}
    shortened = []
    for phase in ("connect", "read", "write", "pool"):
        value = timeout.get(phase) if isinstance(timeout, dict) else None
        if value is None or not math.isfinite(value) or left < value:
            capped[phase] = left
            shortened.append(phase)
        else:
            capped[phase] = value
    # A new dict, not an update: a request built by hand may share its dicts with others.
    request.extensions = {**request.extensions, "timeout": capped}
    return frozenset(shortened)
