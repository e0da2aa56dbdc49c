"""The two HTTP services of the end-to-end jobs test, run by real uvicorn processes.

``web_app`` enqueues a Celery task (``POST /enqueue``) that a real worker runs; the task
calls ``upstream_app`` (``GET /seen``) through the resilient httpx transport. Both call
``buttress.configure()`` at import (``OTEL_SERVICE_NAME`` names each process) and trust
their callers, as services inside one mesh would. ``/seen`` records what reached it in
Redis, for the test to read.
"""

from __future__ import annotations

import json
import os

import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import buttress
from buttress.deadline import remaining
from buttress.middleware import ASGIMiddleware

from . import celery_app

buttress.configure(service="jobs-e2e", log_format="json")
_store = redis.Redis.from_url(os.environ["JOBS_BROKER"])


async def enqueue(request: Request) -> JSONResponse:
    task = celery_app.call_upstream.apply_async(args=[request.query_params["url"]])
    return JSONResponse({"task": task.id})


async def seen(request: Request) -> JSONResponse:
    record = {
        "request_id": buttress.get_correlation_id(),
        "deadline_header": request.headers.get("x-buttress-deadline"),
        "remaining": remaining(),
    }
    _store.rpush("e2e:seen", json.dumps(record))
    return JSONResponse(record)


web_app = ASGIMiddleware(
    Starlette(routes=[Route("/enqueue", enqueue, methods=["POST"])]), trusted_peers="any"
)
upstream_app = ASGIMiddleware(Starlette(routes=[Route("/seen", seen)]), trusted_peers="any")
