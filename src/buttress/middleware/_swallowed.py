"""Exceptions that frameworks turn into 500 responses before they reach the middleware.

Flask answers an unhandled exception with its own 500 (``handle_exception``), Django with
the response of ``response_for_exception``; Starlette and FastAPI exception handlers
answer from inside the ``except`` block that caught it. Each framework says so in its own
way: Flask and Django send ``got_request_exception``; a Starlette handler sends the
response while the exception is still the one being handled (``sys.exc_info()``).

The signal receivers keep the exception on the request itself (the WSGI environ, the
Django request): request-scoped, never on the middleware. They are connected once per
process, the first time a middleware is built while the framework is imported.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Final

__all__ = ["ENVIRON_KEY", "REQUEST_ATTR", "handled_exception", "watch_django", "watch_flask"]

ENVIRON_KEY: Final = "buttress.exception"  # where Flask's exception is left in the environ
REQUEST_ATTR: Final = "_buttress_error"  # where Django's is left on the request

_lock = threading.Lock()
_connected: set[str] = set()


def _flask_exception(sender: object, exception: BaseException, **_: Any) -> None:
    from flask import has_request_context, request

    if has_request_context():
        request.environ[ENVIRON_KEY] = exception


def _django_exception(sender: object, request: Any = None, **_: Any) -> None:
    if request is None or getattr(request, REQUEST_ATTR, None) is not None:
        return  # process_exception already named the view's exception
    # Django sends the signal inside the except block of its sync handler; its async
    # handler runs ``response_for_exception(request, exc)`` in a worker thread, where the
    # exception is only that function's argument.
    error = sys.exc_info()[1] or _argument("response_for_exception", "exc")
    if isinstance(error, Exception):
        setattr(request, REQUEST_ATTR, error)


def _argument(function: str, name: str, depth: int = 8) -> object:
    frame = sys._getframe(2)
    while frame is not None and depth > 0:
        if frame.f_code.co_name == function:
            return frame.f_locals.get(name)
        frame, depth = frame.f_back, depth - 1  # type: ignore[assignment]
    return None


def watch_flask() -> None:
    """Listen for Flask's ``got_request_exception``, if Flask is in use (idempotent)."""
    if "flask" not in sys.modules:
        return
    with _lock:
        if "flask" in _connected:
            return
        from flask import got_request_exception

        # weak=False: the receiver is a module function, alive for the process anyway.
        got_request_exception.connect(_flask_exception, weak=False)
        _connected.add("flask")


def watch_django() -> None:
    """Listen for Django's ``got_request_exception`` (idempotent)."""
    with _lock:
        if "django" in _connected:
            return
        from django.core.signals import got_request_exception

        got_request_exception.connect(
            _django_exception, weak=False, dispatch_uid="buttress.middleware"
        )
        _connected.add("django")


def handled_exception(status: int) -> BaseException | None:
    """The exception a framework handler is answering with this 5xx ``status``, if any.

    Called while the response starts: a Starlette/FastAPI exception handler sends its
    response inside the ``except`` block that caught the exception. An exception that
    carries this very status (``HTTPException(500)``) is the answer, not a failure.
    """
    if status < 500:
        return None
    error = sys.exc_info()[1]
    if not isinstance(error, Exception) or getattr(error, "status_code", None) == status:
        return None
    return error
