"""Exceptions a Starlette or FastAPI exception handler turns into a 5xx are still named."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from buttress.middleware import ASGIMiddleware

from ._support import Telemetry, call_asgi

OFF: Any = {"tracing": False, "metrics": False, "logs": False}  # FastAPI's own telemetry


class OutOfStock(LookupError):
    pass


def fastapi_app(telemetry: Telemetry) -> FastAPI:
    app = FastAPI(telemetry=OFF)

    @app.exception_handler(OutOfStock)
    async def out_of_stock(request: Request, error: OutOfStock) -> JSONResponse:
        return JSONResponse({"detail": "try later"}, status_code=503)

    @app.get("/items/{sku}")
    async def item(sku: str) -> dict[str, str]:
        raise OutOfStock(sku)

    @app.get("/refused")
    async def refused() -> None:
        raise HTTPException(status_code=500, detail="on purpose")

    app.add_middleware(ASGIMiddleware, **telemetry.options())
    return app


async def test_a_fastapi_exception_handler_answer_names_the_exception(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="buttress.access")
    sent = await call_asgi(fastapi_app(telemetry), "/items/x1")
    assert sent[0]["status"] == 503
    (span,) = telemetry.spans()
    error_type = f"{__name__}.OutOfStock"
    assert span.attributes is not None
    assert span.attributes["error.type"] == error_type
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    labels = {
        "http_request_method": "GET",
        "http_route": "/items/{sku}",
        "http_response_status_code": "503",
        "error_type": error_type,
    }
    assert telemetry.count(**labels) == 1
    (line,) = [r for r in caplog.records if r.name == "buttress.access"]
    assert getattr(line, "error_type", None) == error_type


async def test_an_http_exception_is_the_answer_not_a_failure(telemetry: Telemetry) -> None:
    sent = await call_asgi(fastapi_app(telemetry), "/refused")
    assert sent[0]["status"] == 500
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "500"  # as the conventions say for a 5xx
    assert span.events == ()


async def test_a_starlette_handler_and_the_outermost_wrap(telemetry: Telemetry) -> None:
    async def boom(request: Request) -> PlainTextResponse:
        raise OutOfStock("z")

    async def handler(request: Request, error: Exception) -> PlainTextResponse:
        return PlainTextResponse("sorry", status_code=500)

    app = Starlette(routes=[Route("/boom", boom)], exception_handlers={OutOfStock: handler})
    # Outermost: Starlette's own error middleware answers inside us.
    sent = await call_asgi(ASGIMiddleware(app, **telemetry.options()), "/boom")
    assert sent[0]["status"] == 500
    (span,) = telemetry.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.OutOfStock"
