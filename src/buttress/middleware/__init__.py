"""Middleware: ASGI, WSGI and Django shells over one request observer, and httpx transports.

``import buttress.middleware`` imports no web framework and no httpx: the Django class and
the transports load on first access; the ASGI and WSGI shells need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._asgi import ASGIMiddleware
from ._faults import HTTPFaults
from ._observer import SLOLike
from ._options import MiddlewareOptions
from ._wsgi import WSGIMiddleware

if TYPE_CHECKING:
    from ._django import DjangoMiddleware
    from ._transport import ResilientTransport
    from ._transport_async import AsyncResilientTransport

__all__ = [
    "ASGIMiddleware",
    "AsyncResilientTransport",
    "DjangoMiddleware",
    "HTTPFaults",
    "MiddlewareOptions",
    "ResilientTransport",
    "SLOLike",
    "WSGIMiddleware",
]


def __getattr__(name: str) -> Any:
    # Loaded on first access so that importing the middleware costs no framework or client.
    if name == "DjangoMiddleware":
        from ._django import DjangoMiddleware

        return DjangoMiddleware
    if name == "ResilientTransport":
        from ._transport import ResilientTransport

        return ResilientTransport
    if name == "AsyncResilientTransport":
        from ._transport_async import AsyncResilientTransport

        return AsyncResilientTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
