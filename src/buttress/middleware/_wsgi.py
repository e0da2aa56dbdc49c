"""The WSGI shell: any WSGI app, with Flask/Werkzeug routes read after routing.

The request ends when the server closes the response iterable (the body has been sent),
so streamed bodies are timed to their last chunk. The correlation id and trace context are
bound while the app's callable runs and while each chunk of its body is produced.
Per-request state lives in locals, the wrapped ``start_response`` and the body wrapper,
never on the middleware instance.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import Token
from http import HTTPStatus
from typing import Any, Final, Unpack

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter

from .._http import normalise_method
from ..telemetry._correlation import correlation_id
from ._faults import HTTPFaults, check_faults
from ._observer import Exchange, Observer
from ._observer import cgi_key as environ_key
from ._options import MiddlewareOptions
from ._routes import method_not_allowed_rule
from ._swallowed import ENVIRON_KEY, watch_flask

__all__ = ["WSGIMiddleware"]

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_ERROR_BODY: Final = b"Internal Server Error"
# Frameworks without a Werkzeug request may put their route template under this key.
ROUTE_KEY: Final = "buttress.route"
error_logger = logging.getLogger("buttress.middleware")


class _EnvironGetter(Getter[Mapping[str, Any]]):
    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(environ_key(key))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_getter: Final = _EnvironGetter()


class WSGIMiddleware:
    """Correlation ids, a server span, RED metrics and an access line for a WSGI app.

    ``app.wsgi_app = WSGIMiddleware(app.wsgi_app, service="checkout")`` for Flask, or wrap
    any WSGI callable. Options are those of the request observer (docs/middleware.md).
    """

    def __init__(
        self,
        app: WSGIApp,
        /,
        *,
        faults: HTTPFaults | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        self.app = app
        merged: MiddlewareOptions = {"frameworks": ("FLASK",), **options}
        self.observer = Observer(**merged)
        # Faults sit inside the observer, so injected responses are measured like real ones.
        checked = check_faults(faults)
        self._observed_app = checked.wrap_wsgi(app) if checked is not None else app
        header = self.observer.request_id_header
        self._id_env = environ_key(header) if header is not None else None
        self._id_name = header.lower() if header is not None else ""
        deadline = self.observer.deadline_header
        self._deadline_env = environ_key(deadline) if deadline is not None else None
        secret = self.observer.secret_header
        self._secret_env = environ_key(secret) if secret is not None else None
        watch_flask()  # the exceptions Flask answers with its own 500 are named too

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        observer = self.observer
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if path == observer.metrics_path:
            return self._serve_metrics(environ, start_response)
        health = observer.health
        if health is not None and path in health.paths:
            return health.serve_wsgi(environ, start_response)  # never measured
        method, original = normalise_method(environ.get("REQUEST_METHOD", "GET"))
        port = environ.get("SERVER_PORT", "")
        # Positional: the cheapest call, on every request.
        exchange = Exchange(
            method,
            path,
            environ.get("QUERY_STRING", ""),
            environ.get("wsgi.url_scheme", "http"),
            environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/"),
            not observer.excluded(path),
            original,
            environ.get("HTTP_HOST"),
            (environ.get("SERVER_NAME", ""), int(port) if port.isdigit() else None),
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT"),
            observer.captured_headers(lambda h: environ.get(environ_key(h)))
            if observer.capture_headers
            else None,
        )
        exchange.client_port = _port(environ.get("REMOTE_PORT"))
        exchange.request_size = _port(environ.get("CONTENT_LENGTH"), limit=None)
        incoming = environ.get(self._id_env) if self._id_env is not None else None
        _, keys = observer.propagation_fields()
        traced = keys is None or any(key in environ for key in keys)
        deadline = environ.get(self._deadline_env) if self._deadline_env is not None else None
        secret = environ.get(self._secret_env) if self._secret_env is not None else None
        observer.begin(exchange, incoming, environ, _getter, traced, deadline, secret)
        id_name = self._id_name
        id_header = (
            (observer.request_id_header or "", exchange.request_id)
            if exchange.request_id is not None
            else None
        )

        route: list[str | None] = [None]

        def observed_start_response(
            status: str, headers: Headers, exc_info: Any = None
        ) -> Callable[[bytes], object]:
            exchange.status = int(status[:3]) if status[:3].isdigit() else 0
            if exchange.error is None:
                exchange.error = environ.get(ENVIRON_KEY)  # what Flask answered with a 500
            # Read the route now: Flask drops its request from the environ when it pops
            # the request context, before the server iterates the body.
            route[0] = _route(environ)
            if route[0] is None and exchange.status == 405:
                route[0] = method_not_allowed_rule(environ)  # the path matched a rule
            if observer.capture_response_headers:
                exchange.response_headers = observer.captured_response_headers(headers)
            if id_header is not None and not any(k.lower() == id_name for k, _ in headers):
                headers = [*headers, id_header]
            write = start_response(status, headers, exc_info)

            def observed_write(data: bytes) -> object:
                exchange.size += len(data)
                return write(data)

            return observed_write

        admission = observer.admission
        try:
            refused = admission.admit_wsgi(exchange, environ) if admission is not None else None
            if refused is None:
                iterable = self._observed_app(environ, observed_start_response)
            else:
                iterable = refused.answer_wsgi(observed_start_response)
        except Exception as error:
            exchange.error = error
            if exchange.status or not observer.error_response:
                observer.finish(exchange, route[0] or _route(environ))
                raise
            # A WSGI server answers an escaped exception with its own 500, which cannot
            # carry our id header: answer it here and log the exception as the server
            # would have.
            error_logger.error("unhandled exception in %s %s", method, path[:200], exc_info=error)
            observed_start_response(
                "500 Internal Server Error",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(_ERROR_BODY))),
                ],
                sys.exc_info(),
            )
            exchange.size = len(_ERROR_BODY)
            observer.finish(exchange, route[0] or _route(environ))
            return [_ERROR_BODY]
        except BaseException:
            # KeyboardInterrupt, SystemExit, a green thread's timeout: the request is over
            # all the same, and whatever it held (an admission permit) is given back.
            observer.finish(exchange, route[0] or _route(environ))
            raise
        finally:
            # Context set here is undone here, strictly nested: the server may run other
            # requests on this thread before it closes our body. The span and metrics
            # still end when the body is closed.
            observer.release(exchange)
        return _ObservedBody(iterable, observer, exchange, environ, route)

    def _serve_metrics(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        endpoint = self.observer.metrics_endpoint
        assert endpoint is not None  # there is one whenever metrics_path is set
        method = environ.get("REQUEST_METHOD", "GET")
        status, headers, body = endpoint.answer(
            method,
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_AUTHORIZATION"),
            environ.get("HTTP_ACCEPT"),
        )
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*headers, ("Content-Length", str(len(body)))],
        )
        return [] if method == "HEAD" else [body]


class _ObservedBody:
    """The app's response iterable, counted; the request ends when the server closes it."""

    __slots__ = ("_environ", "_exchange", "_exhausted", "_iterable", "_observer", "_route")

    def __init__(
        self,
        iterable: Iterable[bytes],
        observer: Observer,
        exchange: Exchange,
        environ: Environ,
        route: list[str | None],
    ) -> None:
        self._route = route
        self._iterable = iterable
        self._observer = observer
        self._exchange = exchange
        self._environ = environ
        self._exhausted = False

    def __iter__(self) -> Iterator[bytes]:
        exchange = self._exchange
        chunks = iter(self._iterable)
        while True:
            # The app's generator runs as the server pulls each chunk: bind the request's
            # id and span around each step, so its log lines carry them too.
            tokens = _bind(exchange)
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception as error:
                exchange.error = error
                raise
            finally:
                _unbind(tokens)
            exchange.size += len(chunk)
            yield chunk
        self._exhausted = True

    def close(self) -> None:
        exchange = self._exchange
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            if not self._exhausted and exchange.error is None:
                # Closed before the last chunk: the server gave up writing to the client.
                exchange.disconnected = True
            self._observer.finish(exchange, self._route[0] or _route(self._environ))


def _bind(exchange: Exchange) -> tuple[Token[str | None] | None, object | None]:
    rid = exchange.request_id
    span = exchange.span
    if span is None:
        otel_token = None
    else:
        # The request's own context (its baggage included) when begin() made one; an
        # enriched span someone else started is made current over the server's context.
        context = exchange.context
        if context is None:
            context = trace.set_span_in_context(span)
        otel_token = otel_context.attach(context)
    return correlation_id.set(rid) if rid is not None else None, otel_token


def _unbind(tokens: tuple[Token[str | None] | None, object | None]) -> None:
    cid_token, otel_token = tokens
    if otel_token is not None:
        otel_context.detach(otel_token)  # type: ignore[arg-type]
    if cid_token is not None:
        correlation_id.reset(cid_token)


def _route(environ: Environ) -> str | None:
    """The route template the framework matched, read after it routed the request."""
    route = environ.get(ROUTE_KEY)
    if isinstance(route, str):
        return route
    request = environ.get("werkzeug.request")  # Flask and Werkzeug apps put it there
    rule = getattr(request, "url_rule", None)
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None


def _port(value: object, *, limit: int | None = 65535) -> int | None:
    """A port (or, without ``limit``, a Content-Length) from a CGI variable; else ``None``."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if limit is None or 0 < number <= limit else None
