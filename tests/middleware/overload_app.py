"""An ASGI app behind admission control with a rate limit shared through Redis.

Served by uvicorn in its own process (two of them, in tests/middleware/test_overload_servers.py),
configured from the environment: ``OVERLOAD_REDIS_URL`` and ``OVERLOAD_SERVICE``.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry

from buttress import RedisStore
from buttress.middleware import Admission, ASGIMiddleware, RateLimit


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


_store = RedisStore(os.environ["OVERLOAD_REDIS_URL"], service=os.environ["OVERLOAD_SERVICE"])
app = ASGIMiddleware(
    _ok,
    metrics_registry=CollectorRegistry(),
    admission=Admission(
        limit=None,
        rate_limits=[
            RateLimit("api", rate=5, per=60, key="header", header="X-API-Key", store=_store)
        ],
    ),
)
