"""Middleware: ASGI, WSGI and Django shells over one request observer.

``import buttress.middleware`` imports no web framework: the Django class is loaded on
first access, and the ASGI and WSGI shells need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._asgi import ASGIMiddleware
from ._observer import SLOLike
from ._wsgi import WSGIMiddleware

if TYPE_CHECKING:
    from ._django import DjangoMiddleware

__all__ = ["ASGIMiddleware", "DjangoMiddleware", "SLOLike", "WSGIMiddleware"]


def __getattr__(name: str) -> Any:
    if name == "DjangoMiddleware":
        from ._django import DjangoMiddleware

        return DjangoMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
