"""Middleware: ASGI, WSGI and Django shells over one request observer.

``import buttress.middleware`` imports no web framework: the Django class loads on first
access; the ASGI and WSGI shells need none. The httpx transports are in ``buttress.httpx``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._trust import TrustedPeers
from ._asgi import ASGIMiddleware
from ._faults import HTTPFaults
from ._health import Health
from ._observer import SLOLike
from ._options import MiddlewareOptions
from ._ratelimits import RateLimit, RequestView
from ._shedding import Admission
from ._wsgi import WSGIMiddleware

if TYPE_CHECKING:
    from ._django import DjangoMiddleware
    from ._endpoint import serve_metrics

__all__ = [
    "ASGIMiddleware",
    "Admission",
    "DjangoMiddleware",
    "HTTPFaults",
    "Health",
    "MiddlewareOptions",
    "RateLimit",
    "RequestView",
    "SLOLike",
    "TrustedPeers",
    "WSGIMiddleware",
    "serve_metrics",
]


def __getattr__(name: str) -> Any:
    # Loaded on first access so that importing the middleware costs no framework.
    if name == "DjangoMiddleware":
        from ._django import DjangoMiddleware

        return DjangoMiddleware
    if name == "serve_metrics":
        from ._endpoint import serve_metrics

        return serve_metrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
