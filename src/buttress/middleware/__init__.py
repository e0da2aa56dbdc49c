"""Middleware: ASGI, WSGI and Django shells, and httpx transports, over one request observer.

``import buttress.middleware`` does not import httpx: the transports load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._transport import ResilientTransport
    from ._transport_async import AsyncResilientTransport

__all__ = ["AsyncResilientTransport", "ResilientTransport"]


def __getattr__(name: str) -> Any:
    if name == "ResilientTransport":
        from ._transport import ResilientTransport

        return ResilientTransport
    if name == "AsyncResilientTransport":
        from ._transport_async import AsyncResilientTransport

        return AsyncResilientTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
