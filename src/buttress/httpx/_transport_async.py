"""``AsyncResilientTransport``: the asyncio twin of ``ResilientTransport``.

Kept line for line parallel to ``_transport.py``: the differences are the awaits.
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

__all__ = ["AsyncResilientTransport"]


async def _aclose(response: httpx.Response) -> None:
    await response.aclose()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """Wrap an async httpx transport: ``httpx.AsyncClient(transport=AsyncResilientTransport())``.

    Same options and behaviour as ``ResilientTransport``; losing hedged attempts are
    cancelled rather than abandoned. See docs/httpx.md.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
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
            discard=_aclose,
            internal_hosts=internal_hosts,
            propagate_trace=propagate_trace,
            redact_query_keys=redact_query_keys,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        host = core.host(request)
        core.refuse_if_late(host)
        call = Call(request, host)
        if not core.retryable(request):  # sent once, never hedged
            return await self._guarded(call)
        retrying = host.retry
        if retrying is not None:
            return await retrying.run_async(self._attempt, (call,), {})
        return await self._attempt(call)

    async def _attempt(self, call: Call) -> httpx.Response:
        """One attempt of the retry: hedged when the host hedges."""
        previous = call.previous
        if previous is not None:  # the retry decided to try again: free its connection
            call.previous = None
            await previous.aclose()
        if call.sent:  # a retry: the wait may have used up the budget
            self._core.refuse_if_late(call.host)
        hedging = call.host.hedge
        if hedging is None:
            response = await self._guarded(call)
        else:
            response = await hedging.run_async(self._hedged, (call,), {})
        call.previous = response
        return response

    async def _hedged(self, call: Call) -> httpx.Response:
        """One of a hedge's racing attempts: its own request, span and metrics."""
        return await self._guarded(call.fork())

    async def _guarded(self, call: Call) -> httpx.Response:
        """One request sent through the host's breaker, bulkhead and throttle."""
        guard = call.host.guard
        if guard is None:
            return await self._send(call)
        try:
            return await guard.run_async(self._send, (call,), {})
        except FailedStatus as failed:  # counted by the guard; the caller gets the answer
            return failed.response

    async def _send(self, call: Call) -> httpx.Response:
        core = self._core
        host = call.host
        attempt = core.begin(call)
        try:
            response = await self._inner.handle_async_request(call.request)
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

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> AsyncResilientTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc_value, traceback)
