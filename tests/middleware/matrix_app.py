"""One app per stack of the compatibility matrix, set up as the README says, plus what a
team may already run beside buttress (FastAPI's native telemetry, OpenTelemetry's
instrumentors). ``MATRIX_STACK`` names the stack; a real server imports ``app`` from here.

Spans leave over OTLP (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), logs are JSON on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import buttress

try:
    import fastapi.telemetry  # noqa: F401  (FastAPI with native OpenTelemetry)

    NATIVE = True
except ImportError:
    NATIVE = False

STACK = os.environ["MATRIX_STACK"]
OPTIONS: dict[str, Any] = {"service": "matrix", "metrics_path": "/metrics"}
log = logging.getLogger("matrix.handler")

buttress.configure(service="matrix", log_format="json")


def _fastapi(native: bool, instrumentor: bool) -> Any:
    from fastapi import FastAPI

    from buttress.middleware import ASGIMiddleware

    off = {"tracing": False, "metrics": False, "logs": False}
    # FastAPI releases before its native telemetry have no such option (and nothing to
    # switch off).
    api = FastAPI(telemetry=off) if not native and NATIVE else FastAPI()  # type: ignore[arg-type]

    @api.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        log.info("handled")
        return {"id": user_id}

    api.add_middleware(ASGIMiddleware, **OPTIONS)
    if instrumentor:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(api)
    return api


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from buttress.middleware import ASGIMiddleware

    async def user(request: Request) -> JSONResponse:
        log.info("handled")
        return JSONResponse({"id": request.path_params["user_id"]})

    starlette = Starlette(routes=[Route("/users/{user_id:int}", user)])
    starlette.add_middleware(ASGIMiddleware, **OPTIONS)
    return starlette


def _flask(instrumentor: bool) -> Any:
    from flask import Flask

    from buttress.middleware import WSGIMiddleware

    flask = Flask(__name__)

    @flask.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        log.info("handled")
        return {"id": user_id}

    flask.wsgi_app = WSGIMiddleware(flask.wsgi_app, **OPTIONS)  # type: ignore[method-assign]
    if instrumentor:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(flask)  # type: ignore[no-untyped-call]
    return flask


def _django(asgi: bool) -> Any:
    import django
    from django.conf import settings
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    def user(request: HttpRequest, pk: int) -> JsonResponse:
        log.info("handled")
        return JsonResponse({"id": pk})

    async def auser(request: HttpRequest, pk: int) -> JsonResponse:
        await asyncio.sleep(0)
        log.info("handled")
        return JsonResponse({"id": pk})

    global urlpatterns
    urlpatterns = [path("users/<int:pk>", user), path("ausers/<int:pk>", auser)]
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="buttress-tests-only",
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=["buttress.middleware.DjangoMiddleware"],
        BUTTRESS_MIDDLEWARE=OPTIONS,
        LOGGING_CONFIG=None,
    )
    django.setup()
    if asgi:
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


urlpatterns: list[Any] = []

BUILD = {
    "fastapi-native": lambda: _fastapi(native=True, instrumentor=False),
    "fastapi-native-off": lambda: _fastapi(native=False, instrumentor=False),
    "fastapi-instrumentor": lambda: _fastapi(native=True, instrumentor=True),
    "starlette": _starlette,
    "flask": lambda: _flask(instrumentor=False),
    "flask-instrumentor": lambda: _flask(instrumentor=True),
    "django-wsgi": lambda: _django(asgi=False),
    "django-asgi": lambda: _django(asgi=True),
}
app = BUILD[STACK]()  # type: ignore[no-untyped-call]
