"""Inbound admission for the middleware: who gets in, who is refused fast, and why.

:class:`Admission` is what ``admission=`` takes. For each request, after the observer has
begun it (so a refusal still has its request id, span and access line) and before the app
sees it, the decision is taken in this order:

1. criticality: the route's setting, overridden by the criticality header when a trusted
   peer sent it (anyone else's header is ignored);
2. the deadline: a request whose propagated deadline (trusted peers only) has no time
   left, or less than the service's no-load latency, is refused with 504: it could not be
   met, and starting it would only waste capacity that others can use;
3. rate limits: the first rule that covers the path and has no token left refuses it
   with 429, ``Retry-After`` and the IETF ``RateLimit-Policy`` / ``RateLimit`` fields;
4. the concurrency limit: over its share of the limit, the request is shed with 503 and
   ``Retry-After``. No queue: a shed request is answered at once.

An admitted request holds a permit until the observer finishes it; every way out of the
shells finishes the request, so the permit always comes back. Excluded paths (``exclude``:
the usual probe and metrics paths by default) are never refused: a probe that is shed
under load would have the orchestrator restart a pod that is merely busy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from .._args import check_seconds
from .._deadline import remaining
from .._errors import ConfigurationError, RateLimited
from .._events import (
    AdmissionDecided,
    AdmissionLimitUpdated,
    AdmissionOutcome,
    RateLimitRejected,
    Registry,
    default_registry,
)
from ..telemetry import _names as names
from ._admission import CRITICALITIES, ConcurrencyLimit, Criticality, LimitMode, Permit
from ._ratelimits import RateLimit, RequestView, RoutePattern, policy_field

if TYPE_CHECKING:
    from ._observer import Exchange


def _meta_key(header: str) -> str:
    # The CGI name of a request header, as WSGI environs and Django's META hold it.
    return "HTTP_" + header.upper().replace("-", "_")


__all__ = ["Admission", "Verdict", "check_admission"]

_BODIES: Final = {
    "shed": b"Service Unavailable: overloaded, retry later\n",
    "rate_limited": b"Too Many Requests\n",
    "deadline": b"Gateway Timeout: the request's deadline cannot be met\n",
}
_STATUS: Final[dict[str, int]] = {"shed": 503, "rate_limited": 429, "deadline": 504}


class Verdict:
    """One request's admission: its outcome, and its permit while it runs."""

    __slots__ = ("_admission", "criticality", "headers", "outcome", "permit", "rule")

    def __init__(
        self,
        admission: Admission,
        outcome: AdmissionOutcome,
        criticality: Criticality,
        permit: Permit | None = None,
        rule: str = "",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._admission = admission
        self.outcome = outcome
        self.criticality = criticality
        self.permit = permit
        self.rule = rule
        self.headers = headers

    @property
    def refused(self) -> bool:
        return self.outcome != "admitted"

    @property
    def status(self) -> int:
        return _STATUS.get(self.outcome, 0)

    def release(self, exchange: Exchange) -> None:
        """Give the permit back (once; later calls do nothing), with what it taught."""
        permit = self.permit
        if permit is None:
            return
        self.permit = None
        admission = self._admission
        limit = admission.concurrency
        assert limit is not None  # there is a permit only when there is a limit
        updated = limit.release(
            permit,
            # A cancelled or failed request's time says nothing about the service's latency.
            sample=exchange.error is None and not exchange.disconnected,
            overloaded=exchange.status in (503, 504),
        )
        if updated is not None:
            events = admission.events
            if events.active:
                events.emit(AdmissionLimitUpdated(admission.name, updated, limit.in_flight))

    def response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """The refusal as (status, headers, body)."""
        body = _BODIES[self.outcome]
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(body))),
            *self.headers,
        ]
        return _STATUS[self.outcome], headers, body

    def span_attributes(self) -> dict[str, str]:
        attributes: dict[str, str] = {
            names.ATTR_ADMISSION_OUTCOME: self.outcome,
            names.ATTR_ADMISSION_CRITICALITY: self.criticality,
        }
        if self.rule:
            attributes[names.ATTR_RATE_LIMIT] = self.rule
        return attributes

    def log_fields(self) -> dict[str, str]:
        fields: dict[str, str] = {
            names.LOG_KEY_ADMISSION: self.outcome,
            names.LABEL_CRITICALITY: self.criticality,
        }
        if self.rule:
            fields[names.LOG_KEY_RATE_LIMIT] = self.rule
        return fields

    async def answer_asgi(self, send: Callable[[Any], Awaitable[None]]) -> None:
        status, headers, body = self.response()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def answer_wsgi(self, start_response: Callable[..., object]) -> list[bytes]:
        status, headers, body = self.response()
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]


class Admission:
    """Inbound overload protection, for ``ASGIMiddleware(app, admission=Admission())``.

    An adaptive concurrency limit, criticality, deadline-aware shedding and rate limits.

    ``limit`` is ``"gradient"`` (adaptive, the default), ``"aimd"`` (adaptive, simpler),
    an int (a fixed limit) or ``None`` (no concurrency limit: rate limits and deadlines
    only). ``initial_limit``, ``min_limit`` and ``max_limit`` bound the adaptive limit;
    ``tolerance`` is how much slower than at no load the service may answer before the
    limit shrinks; ``window`` is how often it is updated. ``routes`` maps path templates
    to a criticality; ``criticality_header`` carries one from trusted peers (``None``:
    headers are never read). ``rate_limits`` are :class:`RateLimit` rules.
    ``shed_deadlines=False`` lets requests with a hopeless deadline in. ``retry_after``
    is what shed requests are told (whole seconds). See docs/overload.md.

    :attr:`concurrency` is the concurrency limit itself (``None`` without one): its
    ``limit``, ``in_flight`` and ``noload_latency`` are readable at any time.
    """

    __slots__ = (
        "_criticality_key", "_routes", "clock", "concurrency", "criticality_header", "events",
        "name", "rate_limits", "retry_after", "shed_deadlines",
    )  # fmt: skip

    def __init__(
        self,
        name: str = "inbound",
        *,
        limit: LimitMode | int | None = "gradient",
        initial_limit: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        tolerance: float = 1.5,
        window: float | timedelta = 0.1,
        routes: Mapping[str, Criticality] | None = None,
        criticality_header: str | None = names.CRITICALITY_HEADER,
        rate_limits: Iterable[RateLimit] = (),
        shed_deadlines: bool = True,
        retry_after: float | timedelta = 1.0,
        clock: Callable[[], float] = time.monotonic,
        events: Registry | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.clock = clock
        window_seconds = check_seconds("window", window)
        self.concurrency: ConcurrencyLimit | None
        if limit is None:
            self.concurrency = None
        elif isinstance(limit, int) and not isinstance(limit, bool):
            if limit < 1:
                raise ConfigurationError(f"a fixed limit must be an int >= 1, got {limit!r}")
            self.concurrency = ConcurrencyLimit(
                mode="fixed", initial_limit=limit, min_limit=1, max_limit=limit, clock=clock,
                window=window_seconds,
            )  # fmt: skip
        else:
            self.concurrency = ConcurrencyLimit(
                mode=limit,  # type: ignore[arg-type]  # checked there (a bool is refused)
                initial_limit=initial_limit,
                min_limit=min_limit,
                max_limit=max_limit,
                tolerance=tolerance,
                window=window_seconds,
                clock=clock,
            )
        self._routes: tuple[tuple[RoutePattern, Criticality], ...] = ()
        if routes is not None:
            if not isinstance(routes, Mapping):
                raise ConfigurationError(f"routes must map templates to a criticality: {routes!r}")
            for template, criticality in routes.items():
                if criticality not in CRITICALITIES:
                    raise ConfigurationError(
                        f"route {template!r}: criticality must be one of {list(CRITICALITIES)}, "
                        f"got {criticality!r}"
                    )
                self._routes += ((RoutePattern(template), criticality),)
        if criticality_header is not None and (
            not isinstance(criticality_header, str) or not criticality_header.isascii()
            or not criticality_header or " " in criticality_header
        ):  # fmt: skip
            raise ConfigurationError(f"invalid criticality_header {criticality_header!r}")
        self.criticality_header = criticality_header
        self._criticality_key = criticality_header.lower() if criticality_header else None
        if isinstance(rate_limits, RateLimit):
            rate_limits = (rate_limits,)
        self.rate_limits = tuple(rate_limits)
        for rule in self.rate_limits:
            if not isinstance(rule, RateLimit):
                raise ConfigurationError(f"rate_limits must be RateLimit rules, got {rule!r}")
        seen = [rule.name for rule in self.rate_limits]
        if len(set(seen)) != len(seen):
            raise ConfigurationError(f"rate limit names must differ, got {seen!r}")
        if not isinstance(shed_deadlines, bool):
            raise ConfigurationError(f"shed_deadlines must be a bool, got {shed_deadlines!r}")
        self.shed_deadlines = shed_deadlines
        after = check_seconds("retry_after", retry_after)
        self.retry_after = str(max(1, math.ceil(after)))  # delta-seconds: a whole number
        self.events = events if events is not None else default_registry

    def __repr__(self) -> str:
        limit = self.concurrency
        shown = "None" if limit is None else f"{limit.mode}:{limit.limit}"
        return f"Admission({self.name!r}, limit={shown}, rate_limits={len(self.rate_limits)})"

    # --- the decision, in its sync and async twins ------------------------------------------

    def decide(self, exchange: Exchange, lookup: Callable[[str], str | None]) -> Verdict:
        """Admit or refuse the request ``exchange`` (``lookup`` reads its headers)."""
        criticality = self._criticality(exchange, lookup)
        refused = self._deadline(criticality)
        if refused is not None:
            return self._emit(refused)
        for rule in self.rate_limits:
            if rule.covers(exchange.path):
                limiter = rule.limiter(rule.key_of(_view(exchange, lookup)))
                try:
                    limiter.acquire()
                except RateLimited as error:
                    return self._emit(self._limited(rule, error.retry_after, criticality))
        return self._emit(self._concurrency(criticality))

    async def decide_async(
        self, exchange: Exchange, lookup: Callable[[str], str | None]
    ) -> Verdict:
        """:meth:`decide` for an event loop: a shared store is asked without blocking it."""
        criticality = self._criticality(exchange, lookup)
        refused = self._deadline(criticality)
        if refused is not None:
            return self._emit(refused)
        for rule in self.rate_limits:
            if rule.covers(exchange.path):
                limiter = rule.limiter(rule.key_of(_view(exchange, lookup)))
                try:
                    await limiter.acquire_async()
                except RateLimited as error:
                    return self._emit(self._limited(rule, error.retry_after, criticality))
        return self._emit(self._concurrency(criticality))

    def _criticality(self, exchange: Exchange, lookup: Callable[[str], str | None]) -> Criticality:
        key = self._criticality_key
        if key is not None and exchange.trusted:
            sent = lookup(key)
            if sent is not None:
                sent = sent.strip().lower()
                for known in CRITICALITIES:
                    if sent == known:
                        return known
        for pattern, criticality in self._routes:
            if pattern.matches(exchange.path):
                return criticality
        return "default"

    def _deadline(self, criticality: Criticality) -> Verdict | None:
        if not self.shed_deadlines:
            return None
        left = remaining()
        if left is None:
            return None
        limit = self.concurrency
        fastest = limit.noload_latency if limit is not None else None
        if left <= 0 or (fastest is not None and left < fastest):
            return Verdict(self, "deadline", criticality)
        return None

    def _limited(self, rule: RateLimit, retry_after: float, criticality: Criticality) -> Verdict:
        events = self.events
        if events.active:
            events.emit(RateLimitRejected(rule.name, retry_after))
        headers = (
            ("retry-after", str(max(1, math.ceil(retry_after)))),
            ("ratelimit-policy", policy_field(self.rate_limits)),
            ("ratelimit", rule.refusal_item(retry_after)),
        )
        return Verdict(self, "rate_limited", criticality, rule=rule.name, headers=headers)

    def _concurrency(self, criticality: Criticality) -> Verdict:
        limit = self.concurrency
        if limit is None:
            return Verdict(self, "admitted", criticality)
        permit = limit.acquire(criticality)
        if permit is None:
            return Verdict(self, "shed", criticality, headers=(("retry-after", self.retry_after),))
        return Verdict(self, "admitted", criticality, permit)

    def _emit(self, verdict: Verdict) -> Verdict:
        events = self.events
        if events.active:
            events.emit(
                AdmissionDecided(self.name, verdict.outcome, verdict.criticality, verdict.rule)
            )
        return verdict

    # --- the shells' hooks -----------------------------------------------------------------

    async def admit_asgi(
        self,
        exchange: Exchange,
        headers: list[tuple[bytes, bytes]],
        send: Callable[[Any], Awaitable[None]],
    ) -> bool:
        """Decide; a refused request is answered here. True when the app should run."""
        if not exchange.observed:
            return True  # excluded paths (probes, /metrics) are never refused

        def lookup(name: str) -> str | None:
            wanted = name.encode("latin-1")
            for key, value in headers:
                if key == wanted:
                    return value.decode("latin-1")
            return None

        verdict = exchange.admission = await self.decide_async(exchange, lookup)
        if verdict.refused:
            await verdict.answer_asgi(send)
            return False
        return True

    def admit_wsgi(self, exchange: Exchange, environ: Mapping[str, Any]) -> Verdict | None:
        """Decide from a WSGI environ (or Django's META); the verdict when refused."""
        if not exchange.observed:
            return None

        def lookup(name: str) -> str | None:
            value = environ.get(_meta_key(name))
            return value if isinstance(value, str) else None

        verdict = exchange.admission = self.decide(exchange, lookup)
        return verdict if verdict.refused else None

    async def admit_meta_async(
        self, exchange: Exchange, environ: Mapping[str, Any]
    ) -> Verdict | None:
        """:meth:`admit_wsgi` for Django's async stack."""
        if not exchange.observed:
            return None

        def lookup(name: str) -> str | None:
            value = environ.get(_meta_key(name))
            return value if isinstance(value, str) else None

        verdict = exchange.admission = await self.decide_async(exchange, lookup)
        return verdict if verdict.refused else None


def _view(exchange: Exchange, lookup: Callable[[str], str | None]) -> RequestView:
    return RequestView(
        exchange.method, exchange.path, exchange.client_address, exchange.trusted, lookup
    )


def check_admission(option: object) -> Admission | None:
    if option is None or isinstance(option, Admission):
        return option
    raise ConfigurationError(f"admission must be an Admission or None, got {option!r}")
