"""Fault injection for the middleware: error responses or latency for a share of requests.

:class:`HTTPFaults` answers a share of requests with an error status, or delays them,
before the application sees them, so dashboards, SLO burn-rate alerts and clients'
retries can be proven against failures chosen on purpose. Given to a middleware as
``faults=``, it sits inside the observer: injected responses are measured, traced and
logged like real ones.

It is off until :meth:`HTTPFaults.enable` is called. A request header can trigger a fault
only when both a header name and a secret were configured, and only when the request
carries exactly that secret (compared in constant time): nothing outside the service can
turn faults on otherwise.
"""

from __future__ import annotations

import hmac
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from .. import FaultInjection
from .._errors import ConfigurationError
from .._events import Registry

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["HTTPFaults"]

_BODY: Final = b"fault injected on purpose"
_TOKEN: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
MIN_SECRET: Final = 16

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HTTPFaults:
    """Inject error responses or latency into a share of requests, for a middleware.

    ``status`` (503 by default; ``None`` for latency only) is what a faulted request is
    answered with, without reaching the application; ``latency`` (seconds or a
    timedelta) delays a faulted request first. ``rate`` is the share of requests faulted
    while enabled, in [0, 1]; nothing is injected until :meth:`enable` (or
    ``enabled=True``). ``header`` and ``secret``, given together, fault every request
    that carries ``header: secret``, enabled or not; the secret must be at least 16
    characters. ``random``, ``sleep`` (sync or async) and ``events`` (the event
    registry) are injectable for tests. See docs/faults.md.
    """

    __slots__ = ("_header_asgi", "_header_wsgi", "_injection", "_secret", "_sleep", "status")

    def __init__(
        self,
        name: str = "http",
        *,
        rate: float = 0.1,
        status: int | None = 503,
        latency: float | timedelta | None = None,
        enabled: bool = False,
        header: str | None = None,
        secret: str | None = None,
        random: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        events: Registry | None = None,
    ) -> None:
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
        ):
            raise ConfigurationError(
                f"status must be an HTTP status (100-599) or None, got {status!r}"
            )
        if status is None and latency is None:
            raise ConfigurationError(
                f"HTTPFaults {name!r} injects nothing: give status= or latency="
            )
        self.status = status
        # The switch, the rate, the draw and the events are FaultInjection's; the result
        # it would answer is never used (the response is written here).
        answer: dict[str, Any] = {"result": status} if status is not None else {}
        self._injection = FaultInjection(
            name,
            rate=rate,
            latency=latency,
            enabled=enabled,
            random=random,
            sleep=sleep,
            events=events,
            **answer,
        )
        self._sleep = sleep
        if (header is None) != (secret is None):
            raise ConfigurationError(
                "header= and secret= go together: a fault header needs a secret value"
                f" (got header={header!r}, secret={'set' if secret else secret!r})"
            )
        self._header_asgi: bytes | None = None
        self._header_wsgi: str | None = None
        self._secret: bytes | None = None
        if header is not None:
            if not isinstance(header, str) or not _TOKEN.match(header):
                raise ConfigurationError(f"header must be an HTTP header name, got {header!r}")
            if not isinstance(secret, str) or len(secret) < MIN_SECRET:
                raise ConfigurationError(
                    f"secret must be a string of at least {MIN_SECRET} characters"
                    f" (got one of {len(secret) if isinstance(secret, str) else secret!r})"
                )
            self._header_asgi = header.lower().encode("latin-1")
            self._header_wsgi = "HTTP_" + header.upper().replace("-", "_")
            self._secret = secret.encode("utf-8")

    @property
    def name(self) -> str:
        """The name the ``FaultInjected`` events carry."""
        return self._injection.name

    @property
    def enabled(self) -> bool:
        """Whether faults are injected at ``rate`` (the header trigger works regardless)."""
        return self._injection.enabled

    @property
    def rate(self) -> float:
        """The share of requests faulted while enabled."""
        return self._injection.rate

    @property
    def latency(self) -> float | None:
        """The delay of a faulted request, in seconds."""
        return self._injection.latency

    def enable(self, *, rate: float | None = None) -> None:
        """Start injecting (at ``rate``, if given) from the next request on."""
        self._injection.enable(rate=rate)

    def disable(self) -> None:
        """Stop injecting at a rate from the next request on."""
        self._injection.disable()

    def set_rate(self, rate: float) -> None:
        """Change the share of requests faulted; it does not switch injection on or off."""
        self._injection.set_rate(rate)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        header = ", header trigger" if self._secret is not None else ""
        return (
            f"HTTPFaults({self.name!r}, rate={self.rate}, status={self.status},"
            f" latency={self.latency}{header}, {state})"
        )

    # -- decisions -------------------------------------------------------------------

    def _triggered(self, value: bytes | None) -> bool:
        secret = self._secret
        return secret is not None and value is not None and hmac.compare_digest(value, secret)

    def _faulted_asgi(self, scope: Any) -> bool:
        wanted = self._header_asgi
        if wanted is not None:
            for name, value in scope["headers"]:
                if name == wanted:
                    if self._triggered(value):
                        return True
                    break
        return self._injection._hit()

    def _faulted_wsgi(self, environ: dict[str, Any]) -> bool:
        key = self._header_wsgi
        if key is not None:
            value = environ.get(key)
            if isinstance(value, str) and self._triggered(value.encode("latin-1")):
                return True
        return self._injection._hit()

    # -- the shells --------------------------------------------------------------------

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind these faults (HTTP requests only; other scopes pass through)."""

        async def faulted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or not self._faulted_asgi(scope):
                await app(scope, receive, send)
                return
            latency = self.latency
            if latency is not None:
                self._injection._emit("latency")
                if self._sleep is None:
                    import asyncio

                    await asyncio.sleep(latency)
                else:
                    slept = self._sleep(latency)
                    if inspect.isawaitable(slept):
                        await slept
            if self.status is None:
                await app(scope, receive, send)
                return
            self._injection._emit("result")
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})

        return faulted

    def wrap_wsgi(self, app: WSGIApp) -> WSGIApp:
        """``app`` behind these faults."""

        def faulted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not self._faulted_wsgi(environ):
                return app(environ, start_response)
            latency = self.latency
            if latency is not None:
                self._injection._emit("latency")
                (self._sleep or time.sleep)(latency)
            if self.status is None:
                return app(environ, start_response)
            self._injection._emit("result")
            start_response(
                f"{self.status} {_reason(self.status)}",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(_BODY))),
                ],
            )
            return [_BODY]

        return faulted


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected Fault"


def check_faults(faults: object) -> HTTPFaults | None:
    """The middleware's ``faults=`` option, checked."""
    if faults is None or isinstance(faults, HTTPFaults):
        return faults
    raise ConfigurationError(f"faults must be a buttress.middleware.HTTPFaults, got {faults!r}")
