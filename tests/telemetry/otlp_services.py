"""Two services exporting over OTLP, run by real servers in the shutdown tests.

``fastapi_app`` (uvicorn) and ``flask_app`` (gunicorn) call ``buttress.configure()`` at
import, as an application does, from the ``OTEL_*`` variables the test sets. Each request
of ``/items/{item}`` logs one structlog event and one stdlib record inside the request
and goes through a retry policy, so every signal has something to say about it;
``/proxy/{item}`` calls ``/items/{item}`` through the resilient httpx transport.
"""

from __future__ import annotations

import logging

import httpx
import structlog
from fastapi import FastAPI, Request
from flask import Flask

import buttress
from buttress.httpx import AsyncResilientTransport
from buttress.middleware import ASGIMiddleware, WSGIMiddleware

buttress.configure(service="otlp-shop", version="2.0.1", environment="test", log_format="json")

_stdlib = logging.getLogger("shop.app")
_events = structlog.get_logger("shop.events")


@buttress.retry(on=KeyError, name="lookup", attempts=2)
def _lookup(item: str) -> str:
    return item.upper()


def handle(item: str) -> dict[str, str]:
    _events.info("item.looked_up", item=item)
    _stdlib.info("stdlib line for %s", item)
    return {"item": _lookup(item)}


fastapi_app = FastAPI()


@fastapi_app.get("/items/{item}")
async def get_item(item: str) -> dict[str, str]:
    return handle(item)


@fastapi_app.get("/proxy/{item}")
async def proxy(item: str, request: Request) -> dict[str, str]:
    # An outbound call through the resilient transport, to this same service.
    async with httpx.AsyncClient(transport=AsyncResilientTransport()) as client:
        response = await client.get(f"{request.base_url}items/{item}")
    return {"upstream": response.json()["item"]}


fastapi_app.add_middleware(ASGIMiddleware, service="otlp-shop")

_flask = Flask(__name__)


@_flask.get("/items/<item>")
def flask_item(item: str) -> dict[str, str]:
    return handle(item)


_flask.wsgi_app = WSGIMiddleware(_flask.wsgi_app, service="otlp-shop")  # type: ignore[method-assign]
flask_app = _flask
