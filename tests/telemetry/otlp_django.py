"""A Django project exporting over OTLP, served by gunicorn in the shutdown tests.

The same ``buttress.configure()`` and request handler as ``otlp_services``; Django's
settings are process-wide, so the project lives in a module of its own.
"""

from __future__ import annotations

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests.telemetry.otlp_services import handle

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="buttress-tests-only",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=["buttress.middleware.DjangoMiddleware"],
    BUTTRESS_MIDDLEWARE={"service": "otlp-shop"},
    LOGGING_CONFIG=None,
)
django.setup()


def item(request: HttpRequest, item: str) -> JsonResponse:
    return JsonResponse(handle(item))


urlpatterns = [path("items/<str:item>", item)]

application = get_wsgi_application()
