"""The application of the load test: Starlette behind buttress's ASGI middleware.

Served by uvicorn in its own process. ``/users/{id}`` and ``/items`` answer small JSON
bodies; the middleware serves Prometheus metrics at ``/metrics``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import buttress
from buttress.middleware import ASGIMiddleware

buttress.configure(service="reliability-load", log_level="WARNING", log_format="json")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"], "name": "someone"})


async def items(request: Request) -> JSONResponse:
    return JSONResponse({"page": request.query_params.get("page", "1"), "items": [1, 2, 3]})


app = ASGIMiddleware(
    Starlette(routes=[Route("/users/{id:int}", user), Route("/items", items)]),
    service="reliability-load",
    metrics_path="/metrics",
)
