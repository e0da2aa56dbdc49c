"""Middleware: ASGI, WSGI and Django shells, and httpx transports, over one request observer."""

__all__: list[str] = []
