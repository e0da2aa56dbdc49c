"""Message headers: what a producer writes and what a consumer may believe.

A producer writes the W3C trace context, the correlation id and the time left before the
current deadline (:func:`inject`). A consumer reads them back (:func:`extract`) as the
HTTP middleware reads a request: the headers are the producer's word, honoured only when
configuration says the producer is trusted (a shared secret in a header, or ``"any"``).
Only the few known keys are read, each bounded in length and validated; anything else in
the headers is never looked at.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link

from .._baggage import bounded, without
from .._deadline import Clock, current_deadline
from .._deadline_header import format_deadline, parse_deadline
from .._trust import ANY, TrustedPeers, check_trust
from ..telemetry import _names as n
from ..telemetry._correlation import correlation_id, is_valid_correlation_id

__all__ = ["Headers", "MessageContext", "extract", "inject", "normalize"]

Headers: TypeAlias = "Mapping[str, object] | Iterable[tuple[str, object]]"
"""Message headers as a broker client gives them: a mapping, or pairs (Kafka's list)."""

_MAX_VALUE = 1024  # longest header value looked at (a tracestate may be 512 characters)
_MAX_BAGGAGE = 8192  # the W3C baggage limit
_KNOWN = frozenset(
    (
        n.HEADER_TRACEPARENT,
        n.HEADER_TRACESTATE,
        "baggage",
        n.MESSAGE_REQUEST_ID_HEADER,
        n.MESSAGE_DEADLINE_HEADER,
    )
)


def inject(
    headers: MutableMapping[str, str],
    *,
    present: TrustedPeers | None = None,
    clock: Clock = time.monotonic,
    context: Context | None = None,
) -> MutableMapping[str, str]:
    """Write trace context, correlation id and remaining deadline into ``headers``.

    ``present`` (the consumers' :class:`~buttress.middleware.TrustedPeers` with a header
    and secret) adds that header, so that consumers configured with the same object trust
    these headers. ``context`` is the OpenTelemetry context whose trace is written (the
    current one by default). Returns ``headers``, for ``send(..., headers=inject({}))``.
    """
    propagate.inject(headers, context=context)
    request_id = correlation_id.get()
    if request_id is not None:
        headers[n.MESSAGE_REQUEST_ID_HEADER] = request_id
    deadline = current_deadline()
    if deadline is not None:
        headers[n.MESSAGE_DEADLINE_HEADER] = format_deadline(deadline - clock())
    if present is not None and present.header is not None:
        headers[present.header] = present.credential()
    return headers


def normalize(headers: Headers | None, extra: Iterable[str] = ()) -> dict[str, str]:
    """The known keys of ``headers`` (and ``extra``), lower-cased, as bounded strings.

    Values that are neither ``str`` nor ``bytes`` (a hostile producer can send any JSON),
    or longer than 1024 characters (8192 for baggage), are dropped.
    """
    if headers is None:
        return {}
    wanted = _KNOWN.union(extra) if extra else _KNOWN
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            continue
        key = key.lower()
        if key not in wanted:
            continue
        limit = _MAX_BAGGAGE if key == "baggage" else _MAX_VALUE
        if isinstance(value, bytes):
            if len(value) > limit:
                continue
            value = value.decode("latin-1")
        if isinstance(value, str) and len(value) <= limit:
            found[key] = value
    return found


class _Getter(Getter[dict[str, str]]):
    """Reads a normalized dict for the global propagator."""

    def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return None if value is None else [value]

    def keys(self, carrier: dict[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _Getter()

Trust: TypeAlias = "TrustedPeers | Literal['any'] | None"


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What a consumer takes from a message's headers, after the trust decision.

    ``parent`` is the context to start the consumer span in (the producer's trace when
    trusted, else the consumer's own); ``links`` links an untrusted producer's trace.
    ``request_id`` and ``deadline`` (seconds left) are ``None`` unless trusted and valid.
    """

    trusted: bool
    parent: Context
    links: tuple[Link, ...]
    request_id: str | None
    deadline: float | None


def extract(
    headers: Headers | None,
    *,
    trusted_producers: Trust = None,
    continue_trace: Literal["trusted", "always", "never"] = "trusted",
) -> MessageContext:
    """The :class:`MessageContext` of a message; hostile headers are bounded and ignored."""
    trust = check_trust(trusted_producers)
    extra = (trust.header,) if isinstance(trust, TrustedPeers) and trust.header else ()
    carrier = normalize(headers, extra)
    if trust == ANY:
        trusted = True
    elif isinstance(trust, TrustedPeers) and trust.header is not None:
        trusted = trust.trusts(None, carrier.get(trust.header))
    else:
        trusted = False
    base = Context()
    extracted = propagate.extract(carrier, getter=_GETTER, context=base)
    links: tuple[Link, ...] = ()
    if continue_trace == "always" or (continue_trace == "trusted" and trusted):
        parent = bounded(extracted) if trusted else without(extracted)
    else:
        parent = base
        span_context = trace.get_current_span(extracted).get_span_context()
        if span_context.is_valid:
            links = (Link(span_context),)
    request_id = deadline = None
    if trusted:
        raw_id = carrier.get(n.MESSAGE_REQUEST_ID_HEADER)
        if raw_id is not None and is_valid_correlation_id(raw_id):
            request_id = raw_id
        deadline = parse_deadline(carrier.get(n.MESSAGE_DEADLINE_HEADER))
    return MessageContext(trusted, parent, links, request_id, deadline)
