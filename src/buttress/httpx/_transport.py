"""``ResilientTransport``: retries, spans, metrics and propagation for a sync httpx client.

The async twin is ``_transport_async.py``; they differ only where the I/O does. The work
around each attempt lives in :mod:`._outbound`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

import httpx

from .. import CircuitBreaker
from .._http import DEFAULT_REDACT_QUERY
from ._outbound import (
    DEFAULT_RETRY_ON,
    DEFAULT_RETRY_STATUSES,
    BreakerOption,
    BulkheadOption,
    Call,
    FailedStatus,
    Outbound,
)

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .._deadline import Clock
    from .._events import Registry
    from .._trust import PropagateTrace

__all__ = ["ResilientTransport"]


class ResilientTransport(httpx.BaseTransport):
    """Wrap an httpx transport: ``httpx.Client(transport=ResilientTransport())``.

    Each destination host gets its own retry policy (and budget). Idempotent requests
    (GET, HEAD, OPTIONS, PUT, DELETE, or any request with an ``Idempotency-Key`` header)
    are retried on connection errors and on ``retry_statuses`` responses, honouring
    ``Retry-After``; others are sent once. Every attempt is a client span carrying
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
        attempts: int = 3,
        deadline: float | timedelta = 30.0,
        wait_initial: float | timedelta = 0.1,
        wait_max: float | timedelta = 5.0,
        retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
        retry_on: tuple[type[Exception], ...] = DEFAULT_RETRY_ON,
        budget: float | None = 0.2,
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
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._core = Outbound(
            attempts=attempts,
            deadline=deadline,
            wait_initial=wait_initial,
            wait_max=wait_max,
            retry_statuses=retry_statuses,
            retry_on=retry_on,
            budget=budget,
            breaker=breaker,
            bulkhead=bulkhead,
            name=name,
            request_id_header=request_id_header,
            tracer_provider=tracer_provider,
            metrics_registry=metrics_registry,
            events=events,
            clock=clock,
            sleep=sleep,
            internal_hosts=internal_hosts,
            propagate_trace=propagate_trace,
            redact_query_keys=redact_query_keys,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        host = core.host(request)
        core.refuse_if_late(host)
        call = Call(request, host)
        retrying = host.retry
        if retrying is not None and core.retryable(request):
            return retrying.run_sync(self._guarded, (call,), {})
        return self._guarded(call)

    def _guarded(self, call: Call) -> httpx.Response:
        """One attempt through the host's breaker and bulkhead (what the retry calls)."""
        previous = call.previous
        if previous is not None:  # the retry decided to try again: free its connection
            call.previous = None
            previous.close()
        if call.sent:  # a retry: the wait may have used up the budget
            self._core.refuse_if_late(call.host)
        guard = call.host.guard
        if guard is None:
            return self._send(call)
        try:
            return guard.run_sync(self._send, (call,), {})
        except FailedStatus as failed:  # counted by the breaker; the caller gets the answer
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
        call.previous = response
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
