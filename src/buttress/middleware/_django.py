"""The Django shell: a ``MIDDLEWARE`` entry, sync and async, over the request observer.

Options come from the ``BUTTRESS_MIDDLEWARE`` dict in settings. Put the entry first in
``MIDDLEWARE`` so it times and traces everything below it. Importing this module imports
Django; ``buttress.middleware`` loads it only when ``DjangoMiddleware`` is first used.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from .._errors import ConfigurationError
from .._http import normalise_method
from ._observer import Exchange, Observer
from ._observer import cgi_key as environ_key
from ._options import MiddlewareOptions, check_option_names
from ._routes import regex_template
from ._swallowed import REQUEST_ATTR, watch_django
from ._wsgi import _getter, _port

if TYPE_CHECKING:
    from ._endpoint import Refusal
    from ._shedding import Verdict

__all__ = ["DjangoMiddleware"]

_ERROR_KEY: Final = REQUEST_ATTR  # where process_exception leaves the view's exception


class DjangoMiddleware:
    """Correlation ids, a server span, RED metrics and an access line for Django.

    Add ``"buttress.middleware.DjangoMiddleware"`` at the top of ``MIDDLEWARE``; set
    options in ``BUTTRESS_MIDDLEWARE = {"service": "checkout", ...}``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        configured = getattr(settings, "BUTTRESS_MIDDLEWARE", {})
        if not isinstance(configured, dict):
            raise ConfigurationError(
                f"BUTTRESS_MIDDLEWARE must be a dict of options, got {configured!r}"
            )
        check_option_names(configured, "BUTTRESS_MIDDLEWARE")
        options: MiddlewareOptions = {"frameworks": ("DJANGO",), **configured}  # type: ignore[typeddict-item]
        self.observer = Observer(**options)
        header = self.observer.request_id_header
        self._id_meta = environ_key(header) if header is not None else None
        deadline = self.observer.deadline_header
        self._deadline_meta = environ_key(deadline) if deadline is not None else None
        secret = self.observer.secret_header
        self._secret_meta = environ_key(secret) if secret is not None else None
        watch_django()  # exceptions Django answers below us (other middleware) are named too
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        if request.path == self.observer.metrics_path:
            return self._metrics(request)
        health = self.observer.health
        if health is not None and request.path in health.paths:
            return health.django_response(request)
        exchange = self._begin(request)
        response: HttpResponseBase | None = None
        admission = self.observer.admission
        try:
            refused = None if admission is None else admission.admit_wsgi(exchange, request.META)
            response = self.get_response(request) if refused is None else _refusal(refused)
        except Exception as error:
            exchange.error = error
            raise
        finally:
            self._end_or_defer(request, exchange, response)
            self.observer.release(exchange)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path == self.observer.metrics_path:
            return await self._ametrics(request)
        health = self.observer.health
        if health is not None and request.path in health.paths:
            return await health.django_response_async(request)
        exchange = self._begin(request)
        response: HttpResponseBase | None = None
        admission = self.observer.admission
        try:
            refused = (
                await admission.admit_meta_async(exchange, request.META)
                if admission is not None
                else None
            )
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            response = await get_response(request) if refused is None else _refusal(refused)
        except asyncio.CancelledError:
            # Django's ASGI handler cancels the request when the client disconnects.
            exchange.disconnected = True
            raise
        except Exception as error:
            exchange.error = error
            raise
        finally:
            self._end_or_defer(request, exchange, response)
            self.observer.release(exchange)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django turns the view's exception into a 500 response below us; keep it on the
        # request (request-scoped, never on self) so the span can name it.
        setattr(request, _ERROR_KEY, exception)

    def _begin(self, request: HttpRequest) -> Exchange:
        observer = self.observer
        meta = request.META
        path = request.path
        method, original = normalise_method(request.method or "GET")
        port = str(meta.get("SERVER_PORT", ""))
        # Positional: the cheapest call, on every request.
        exchange = Exchange(
            method,
            path,
            meta.get("QUERY_STRING", ""),
            request.scheme or "http",
            str(meta.get("SERVER_PROTOCOL", "HTTP/1.1")).removeprefix("HTTP/"),
            not observer.excluded(path),
            original,
            meta.get("HTTP_HOST"),
            (meta.get("SERVER_NAME", ""), int(port) if port.isdigit() else None),
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_USER_AGENT"),
            observer.captured_headers(lambda h: meta.get(environ_key(h)))
            if observer.capture_headers
            else None,
        )
        exchange.client_port = _port(meta.get("REMOTE_PORT"))
        exchange.request_size = _port(meta.get("CONTENT_LENGTH"), limit=None)
        incoming = meta.get(self._id_meta) if self._id_meta is not None else None
        _, keys = observer.propagation_fields()
        traced = keys is None or any(key in meta for key in keys)
        deadline = meta.get(self._deadline_meta) if self._deadline_meta is not None else None
        secret = meta.get(self._secret_meta) if self._secret_meta is not None else None
        observer.begin(exchange, incoming, meta, _getter, traced, deadline, secret)
        return exchange

    def _end_or_defer(
        self, request: HttpRequest, exchange: Exchange, response: HttpResponseBase | None
    ) -> None:
        observer = self.observer
        if response is None:  # the exception propagates; Django's handler answers
            if exchange.error is None:
                exchange.error = getattr(request, _ERROR_KEY, None)
            observer.finish(exchange, _route(request))
            return
        exchange.status = response.status_code
        if observer.capture_response_headers:
            exchange.response_headers = observer.captured_response_headers(response.items())
        if exchange.error is None:
            exchange.error = getattr(request, _ERROR_KEY, None)
        header = observer.request_id_header
        if header is not None and exchange.request_id is not None and header not in response:
            response[header] = exchange.request_id
        if isinstance(response, StreamingHttpResponse):
            # The body is produced while the server sends it: count it as it goes and
            # end the request when the server closes the response.
            content = response.streaming_content
            response.streaming_content = (
                _acounted(content, exchange) if response.is_async else _counted(content, exchange)
            )
            route = _route(request)
            response._resource_closers.append(lambda: observer.finish(exchange, route))
            return
        if isinstance(response, HttpResponse):
            exchange.size = len(response.content)
        observer.finish(exchange, _route(request))

    def _metrics(self, request: HttpRequest) -> HttpResponse:
        endpoint = self.observer.metrics_endpoint
        assert endpoint is not None  # there is one whenever metrics_path is set
        meta = request.META
        answer = endpoint.answer(
            request.method or "GET",
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_AUTHORIZATION"),
            meta.get("HTTP_ACCEPT"),
        )
        return _metrics_response(request, answer)

    async def _ametrics(self, request: HttpRequest) -> HttpResponse:
        # An async stack renders on a worker thread: never on the event loop.
        endpoint = self.observer.metrics_endpoint
        assert endpoint is not None
        meta = request.META
        answer = await endpoint.answer_async(
            request.method or "GET",
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_AUTHORIZATION"),
            meta.get("HTTP_ACCEPT"),
        )
        return _metrics_response(request, answer)


def _metrics_response(request: HttpRequest, answer: Refusal) -> HttpResponse:
    status, headers, body = answer
    response = HttpResponse(b"" if request.method == "HEAD" else body, status=status)
    for name, value in headers:
        response[name] = value
    return response


def _refusal(verdict: Verdict) -> HttpResponse:
    status, headers, body = verdict.response()
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response


def _counted(chunks: Any, exchange: Exchange) -> Iterator[bytes]:
    for chunk in chunks:
        exchange.size += len(chunk)
        yield chunk


async def _acounted(chunks: Any, exchange: Exchange) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        exchange.size += len(chunk)
        yield chunk


def _route(request: HttpRequest) -> str | None:
    """The URL pattern Django resolved, as a path template (``/users/<int:pk>/``)."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return None
    route = regex_template(route)  # re_path routes come as their regular expression
    return route if route.startswith("/") else "/" + route
