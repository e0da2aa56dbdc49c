"""``ResilientTransport``: retries, spans, metrics and propagation for a sync httpx client.

The async twin is ``_transport_async.py``; they differ only where the I/O does. The work
around each attempt lives in :mod:`._outbound`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import httpx

from .. import CircuitBreaker
from .._http import DEFAULT_REDACT_QUERY
from ._outbound import (
    DEFAULT_RETRY,
    DEFAULT_RETRY_STATUSES,
    BreakerOption,
    BulkheadOption,
    Call,
    FailedStatus,
    HedgeOption,
    Outbound,
    RetryOption,
    ThrottleOption,
)

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .._deadline import Clock
    from .._events import Registry
    from .._trust import PropagateTrace

__all__ = ["ResilientTransport"]


def _close(response: httpx.Response) -> None:
    response.close()


class ResilientTransport(httpx.BaseTransport):
    """Wrap an httpx transport: ``httpx.Client(transport=ResilientTransport())``.

    Each destination host gets its own copy of ``retry`` (and budget), ``hedge`` and
    ``throttle``; give a factory taking the host's name to choose per host. Idempotent
    requests (GET, HEAD, OPTIONS, PUT, DELETE, or any request with an
    ``Idempotency-Key`` header) are retried on the retry's exceptions (``RETRY_ON`` by
    default) and on ``retry_statuses`` responses, honouring ``Retry-After`` up to the
    retry's ``retry_after_max``, and hedged when a hedge is given; others are sent once.
    A throttle refuses requests locally (``Throttled``) while the host refuses most.
    Every attempt (each hedged one too) is a client span carrying
    ``traceparent``, the correlation id and the time left before the context's deadline
    (which also caps the attempt's timeouts; a spent deadline raises ``TimedOut`` without
    sending). The caller sees httpx's own exceptions, buttress's ``Rejected`` family, or
    the last response. See docs/httpx.md.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        /,
        *,
        retry: RetryOption = DEFAULT_RETRY,
        retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
        hedge: HedgeOption = None,
        throttle: ThrottleOption = None,
        breaker: BreakerOption = CircuitBreaker,
        bulkhead: BulkheadOption = None,
        name: str = "httpx",
        request_id_header: str | None = "X-Request-ID",
        internal_hosts: Iterable[str] = (),
        propagate_trace: PropagateTrace = "internal",
        redact_query_keys: Iterable[str] = DEFAULT_REDACT_QUERY,
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
        events: Registry | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._core = Outbound(
            retry=retry,
            retry_statuses=retry_statuses,
            hedge=hedge,
            throttle=throttle,
            breaker=breaker,
            bulkhead=bulkhead,
            name=name,
            request_id_header=request_id_header,
            tracer_provider=tracer_provider,
            metrics_registry=metrics_registry,
            events=events,
            clock=clock,
            discard=_close,
            internal_hosts=internal_hosts,
            propagate_trace=propagate_trace,
            redact_query_keys=redact_query_keys,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        host = core.host(request)
        core.refuse_if_late(host)
        call = Call(request, host)
        if not core.retryable(request):  # sent once, never hedged
            return self._guarded(call)
        retrying = host.retry
        if retrying is not None:
            return retrying.run_sync(self._attempt, (call,), {})
        return self._attempt(call)

    def _attempt(self, call: Call) -> httpx.Response:
        """One attempt of the retry: hedged when the host hedges."""
        previous = call.previous
        if previous is not None:  # the retry decided to try again: free its connection
            call.previous = None
            previous.close()
        if call.sent:  # a retry: the wait may have used up the budget
            self._core.refuse_if_late(call.host)
        hedging = call.host.hedge
        if hedging is None:
            response = self._guarded(call)
        else:
            response = hedging.run_sync(self._hedged, (call,), {})
        call.previous = response
        return response

    def _hedged(self, call: Call) -> httpx.Response:
        """One of a hedge's racing attempts: its own request, span and metrics."""
        return self._guarded(call.fork())

    def _guarded(self, call: Call) -> httpx.Response:
        """One request sent through the host's breaker, bulkhead and throttle."""
        guard = call.host.guard
        if guard is None:
            return self._send(call)
        try:
            return guard.run_sync(self._send, (call,), {})
        except FailedStatus as failed:  # counted by the guard; the caller gets the answer
            return failed.response

    def _send(self, call: Call) -> httpx.Response:
        core = self._core
        host = call.host
        attempt = core.begin(call)
        try:
            response = self._inner.handle_request(call.request)
        except BaseException as exc:
            replaced = core.failed(attempt, host, exc)
            if replaced is not None:  # the caller's budget ran out, not the dependency
                raise replaced from exc
            raise
        core.answered(attempt, host, response)
        if response.status_code >= 500 and host.guard is not None:
            raise FailedStatus(
                f"{response.status_code} from {host.name}", request=call.request, response=response
            )
        return response

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> ResilientTransport:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._inner.__exit__(exc_type, exc_value, traceback)
