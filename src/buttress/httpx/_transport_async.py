"""``AsyncResilientTransport``: the asyncio twin of ``ResilientTransport``.

Kept line for line parallel to ``_transport.py``: the differences are the awaits.
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

__all__ = ["AsyncResilientTransport"]


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """Wrap an async httpx transport: ``httpx.AsyncClient(transport=AsyncResilientTransport())``.

    Same options and behaviour as ``ResilientTransport``; ``sleep`` may return an
    awaitable. See docs/httpx.md.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        host = core.host(request)
        core.refuse_if_late(host)
        call = Call(request, host)
        retrying = host.retry
        if retrying is not None and core.retryable(request):
            return await retrying.run_async(self._guarded, (call,), {})
        return await self._guarded(call)

    async def _guarded(self, call: Call) -> httpx.Response:
        """One attempt through the host's breaker and bulkhead (what the retry calls)."""
        previous = call.previous
        if previous is not None:  # the retry decided to try again: free its connection
            call.previous = None
            await previous.aclose()
        if call.sent:  # a retry: the wait may have used up the budget
            self._core.refuse_if_late(call.host)
        guard = call.host.guard
        if guard is None:
            return await self._send(call)
        try:
            return await guard.run_async(self._send, (call,), {})
        except FailedStatus as failed:  # counted by the breaker; the caller gets the answer
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
        call.previous = response
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
