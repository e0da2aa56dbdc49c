"""Calls to other services: httpx transports with retries, a breaker, spans and metrics.

``httpx.Client(transport=buttress.httpx.ResilientTransport())`` (and the async twin)
retries idempotent requests per host, trips a breaker per host, records a client span
and the ``http_client_*`` metrics for every attempt, and sends the time left before the
context's deadline in ``X-Buttress-Deadline``. It takes strategies: ``retry=``,
``hedge=``, ``throttle=``, ``breaker=``, ``bulkhead=``, each one instance (copied or
shared per host) or a factory called with each host's name. ``RETRY_ON`` is what the
default retry retries. See docs/httpx.md.

``import buttress.httpx`` imports no httpx: the transports load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._outbound import DEFAULT_RETRY_ON as RETRY_ON
    from ._transport import ResilientTransport
    from ._transport_async import AsyncResilientTransport

__all__ = ["AsyncResilientTransport", "RETRY_ON", "ResilientTransport"]


def __getattr__(name: str) -> Any:
    # Loaded on first access so that importing the package costs no httpx.
    if name == "ResilientTransport":
        from ._transport import ResilientTransport

        return ResilientTransport
    if name == "AsyncResilientTransport":
        from ._transport_async import AsyncResilientTransport

        return AsyncResilientTransport
    if name == "RETRY_ON":
        from ._outbound import DEFAULT_RETRY_ON

        return DEFAULT_RETRY_ON
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
