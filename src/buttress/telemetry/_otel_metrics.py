"""Metrics through OpenTelemetry: the same instruments as on /metrics, under semconv names.

:func:`choose` is called once by ``configure()`` with the meter it built (or ``None``) and
whether Prometheus stays on. The instrument sets of the middleware, the httpx transports
and the resilience listeners pass through :func:`server`, :func:`client` and
:func:`resilience` when they are made; those return the Prometheus set itself, an
OpenTelemetry set, or one object that records into both. So a request records once into
whichever back-ends were chosen: the choice is made at configuration time, never per call.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import _names as n

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, Observation

    from ..httpx._client_metrics import ClientMetrics
    from ..middleware._metrics import HTTPServerMetrics
    from ._metrics import ResilienceMetrics

__all__ = ["choose", "client", "resilience", "server"]

_meter: Meter | None = None
_prometheus = True
_handed_out = False  # a Prometheus-only set went out before any meter was chosen
_lock = threading.Lock()
# Prometheus set (by identity) -> what is recorded instead; bounded by the registries in use.
_made: dict[int, tuple[object, object]] = {}

_DURATION_HELP = "Duration of HTTP server requests."
_ATTR = {
    n.LABEL_METHOD: n.ATTR_HTTP_REQUEST_METHOD,
    n.LABEL_ROUTE: n.ATTR_HTTP_ROUTE,
    n.LABEL_STATUS: n.ATTR_HTTP_RESPONSE_STATUS_CODE,
    n.LABEL_SERVER_ADDRESS: n.ATTR_SERVER_ADDRESS,
    n.LABEL_ERROR_TYPE: n.ATTR_ERROR_TYPE,
}


def choose(meter: Meter | None, *, prometheus: bool) -> bool:
    """Record into ``meter`` too (or only, without ``prometheus``) from now on.

    Returns whether instruments were handed out before (they keep recording where they
    did: the choice is not looked up per request).
    """
    global _meter, _prometheus, _handed_out
    with _lock:
        _meter, _prometheus = meter, prometheus
        _made.clear()
        early, _handed_out = _handed_out, False
        return early


def _combined(prom: Any, make: Any) -> Any:
    global _handed_out
    meter = _meter
    if meter is None:
        _handed_out = True
        return prom
    with _lock:
        found = _made.get(id(prom))
        if found is None or found[0] is not prom:
            otel = make(meter)
            found = _made[id(prom)] = (prom, _Both(prom, otel) if _prometheus else otel)
        return found[1]


def server(prom: HTTPServerMetrics) -> HTTPServerMetrics:
    """What the middleware records into, given its Prometheus instruments."""
    result: HTTPServerMetrics = _combined(prom, lambda m: ServerInstruments(m, prom.buckets))
    return result


def client(prom: ClientMetrics) -> ClientMetrics:
    """What the httpx transports record into, given their Prometheus instruments."""
    result: ClientMetrics = _combined(prom, lambda m: ClientInstruments(m, prom.registry))
    return result


def resilience(prom: ResilienceMetrics) -> ResilienceMetrics:
    """What the resilience listener records into, given its Prometheus instruments."""
    meter = _meter
    if meter is None:
        return prom

    def make(meter: Meter) -> ResilienceMetrics:
        otel = copy.copy(prom)  # the same attributes, each family replaced below
        for attr, family in vars(prom).items():
            name, unit = n.OTEL_RESILIENCE[family.metric_name]
            if family.is_gauge:
                instrument: Any = meter.create_gauge(name, unit=unit)
            else:
                instrument = meter.create_counter(name, unit=unit)
            mine = _Family(instrument, family.label_names)
            setattr(otel, attr, _BothFamily(family, mine) if _prometheus else mine)
        return otel

    with _lock:
        found = _made.get(id(prom))
        if found is None or found[0] is not prom:
            found = _made[id(prom)] = (prom, make(meter))
        result: ResilienceMetrics = found[1]  # type: ignore[assignment]
        return result


def _attributes(labels: Sequence[str], values: Sequence[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for label, value in zip(labels, values, strict=True):
        key = _ATTR.get(label, label)
        if label == n.LABEL_STATUS:
            if not value.isdigit():
                continue  # no response (a transport error): error.type says why
            attributes[key] = int(value)
            if int(value) >= 500:
                attributes.setdefault(n.ATTR_ERROR_TYPE, value)
        elif label == n.LABEL_ROUTE and value == n.ROUTE_UNMATCHED:
            continue  # the conventions leave http.route out when no route matched
        elif value != "":
            attributes[key] = value
    return attributes


class ServerInstruments:
    """``http.server.*`` instruments; attribute dicts cached per label tuple (bounded keys)."""

    def __init__(self, meter: Meter, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self._duration = meter.create_histogram(
            n.OTEL_HTTP_SERVER_DURATION,
            unit="s",
            description=_DURATION_HELP,
            explicit_bucket_boundaries_advisory=list(self.buckets),
        )
        # No body-size histogram: the conventions make it opt-in, and each SDK record costs
        # about as much as the rest of the middleware's per-request work (it copies and
        # checks the attributes every time); /metrics keeps its size histogram.
        self._active = _InFlight(
            meter, n.OTEL_HTTP_SERVER_ACTIVE, "HTTP requests in flight.", (n.LABEL_METHOD,)
        )
        self._by_key: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def active_inc(self, method: str) -> None:
        self._active.add((method,), 1)

    def record(
        self,
        method: str,
        route: str,
        status: str,
        duration: float,
        size: int,
        trace_id: str | None,
        request_size: int | None = None,
        error_type: str = "",
    ) -> None:
        # The SDK takes the exemplar from the current context itself (trace_based filter).
        self._active.add((method,), -1)
        key = (method, route, status, error_type)
        attributes = self._by_key.get(key)
        if attributes is None:
            labels = (n.LABEL_METHOD, n.LABEL_ROUTE, n.LABEL_STATUS, n.LABEL_ERROR_TYPE)
            attributes = self._by_key[key] = _attributes(labels, key)
        self._duration.record(duration, attributes)


class _Both:
    """The Prometheus set and the OpenTelemetry set of one kind, recorded together."""

    def __init__(self, prom: Any, otel: Any) -> None:
        self._prom = prom
        self._otel = otel
        self.buckets = getattr(prom, "buckets", ())
        self.registry = getattr(prom, "registry", None)

    def active_inc(self, *args: Any) -> None:
        self._prom.active_inc(*args)
        self._otel.active_inc(*args)

    def record(self, *args: Any, **kwargs: Any) -> None:
        self._prom.record(*args, **kwargs)
        self._otel.record(*args, **kwargs)

    def active(self, *args: Any) -> _BothChild:
        return _BothChild(self._prom.active(*args), self._otel.active(*args))

    def observe(self, *args: Any) -> None:
        self._prom.observe(*args)
        self._otel.observe(*args)

    def deadline_exceeded(self, *args: Any) -> None:
        self._prom.deadline_exceeded(*args)
        self._otel.deadline_exceeded(*args)


class _BothChild:
    __slots__ = ("_otel", "_prom")

    def __init__(self, prom: Any, otel: Any) -> None:
        self._prom = prom
        self._otel = otel

    def inc(self, amount: float = 1) -> None:
        self._prom.inc(amount)
        self._otel.inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._prom.dec(amount)
        self._otel.dec(amount)

    def set(self, value: float) -> None:
        self._prom.set(value)
        self._otel.set(value)


class ClientInstruments:
    """``http.client.*`` instruments, shaped as the transports' Prometheus set."""

    def __init__(self, meter: Meter, registry: object) -> None:
        self.registry = registry  # the transports check which registry their set follows
        self._duration = meter.create_histogram(
            n.OTEL_HTTP_CLIENT_DURATION,
            unit="s",
            description="Duration of outbound HTTP requests, until the response headers arrived.",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS),
        )
        self._labels = (n.LABEL_METHOD, n.LABEL_SERVER_ADDRESS)
        self._active = _InFlight(
            meter, n.OTEL_HTTP_CLIENT_ACTIVE, "Outbound requests in flight.", self._labels
        )
        self._children: dict[tuple[str, str], _InFlightChild] = {}
        self._by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
        name, unit = n.OTEL_RESILIENCE[n.HTTP_CLIENT_DEADLINE_EXCEEDED]
        self._deadline = meter.create_counter(
            name, unit=unit, description="Outbound requests the caller's own deadline stopped."
        )

    def deadline_exceeded(self, host: str, reason: str) -> None:
        self._deadline.add(1, {n.ATTR_SERVER_ADDRESS: host, n.LABEL_REASON: reason})

    def active(self, method: str, host: str) -> _InFlightChild:
        key = (method, host)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _InFlightChild(self._active, key)
        return child

    def observe(self, method: str, host: str, status: str, duration: float, span: Any) -> None:
        key = (method, host, status)
        attributes = self._by_key.get(key)
        if attributes is None:
            labels = (*self._labels, n.LABEL_STATUS)
            attributes = self._by_key[key] = _attributes(labels, key)
            if not status:
                attributes[n.ATTR_ERROR_TYPE] = "_OTHER"
        self._duration.record(duration, attributes)


class _InFlight:
    """An in-flight count kept here, read by the SDK only when it collects.

    A synchronous up-down counter would cost two SDK calls per request (each about as
    much as a histogram record); counting under our own lock and handing the totals to an
    observable up-down counter at collection costs a dictionary update instead.
    """

    def __init__(self, meter: Meter, name: str, description: str, labels: tuple[str, ...]):
        self._labels = labels
        self._counts: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        meter.create_observable_up_down_counter(
            name, callbacks=[self._observe], unit="{request}", description=description
        )

    def add(self, key: tuple[str, ...], amount: int) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def _observe(self, options: Any) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        with self._lock:
            counts = list(self._counts.items())
        for key, value in counts:
            yield Observation(value, _attributes(self._labels, key))


class _InFlightChild:
    __slots__ = ("_in_flight", "_key")

    def __init__(self, in_flight: _InFlight, key: tuple[str, ...]) -> None:
        self._in_flight = in_flight
        self._key = key

    def inc(self, amount: float = 1) -> None:
        self._in_flight.add(self._key, int(amount))

    def dec(self, amount: float = 1) -> None:
        self._in_flight.add(self._key, -int(amount))


class _Child:
    """One attribute set of an OpenTelemetry instrument, with Prometheus's child verbs."""

    __slots__ = ("_attributes", "_instrument")

    def __init__(self, instrument: Any, attributes: dict[str, Any]) -> None:
        self._instrument = instrument
        self._attributes = attributes

    def inc(self, amount: float = 1) -> None:
        self._instrument.add(amount, self._attributes)

    def dec(self, amount: float = 1) -> None:
        self._instrument.add(-amount, self._attributes)

    def set(self, value: float) -> None:
        self._instrument.set(value, self._attributes)


class _Family:
    """A resilience instrument with ``child(*labels)``, as the Prometheus families have."""

    __slots__ = ("_children", "_instrument", "_labels")

    def __init__(self, instrument: Any, labels: tuple[str, ...]) -> None:
        self._instrument = instrument
        self._labels = labels
        self._children: dict[tuple[str, ...], _Child] = {}

    def child(self, *labels: str) -> _Child:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = _Child(
                self._instrument, _attributes(self._labels, labels)
            )
        return child


class _BothFamily:
    __slots__ = ("_children", "_otel", "_prom")

    def __init__(self, prom: Any, otel: _Family) -> None:
        self._prom = prom
        self._otel = otel
        self._children: dict[tuple[str, ...], _BothChild] = {}

    def child(self, *labels: str) -> _BothChild:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = _BothChild(
                self._prom.child(*labels), self._otel.child(*labels)
            )
        return child
