"""What a test can capture: events, metrics, spans and log events, each for one block.

Each capture is a context manager that restores what it changed. A capture also makes
sure the default registry has the listener it depends on (metrics need the Prometheus
listener, logs the log listener, span events the span listener) for the block only, so
it works whether the default listeners are loaded or a fixture cleared them. Nothing
heavy is imported here: prometheus_client and the OpenTelemetry SDK load when a capture
that needs them starts.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from .._events import default_registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from .._events import Event, Listener

__all__ = [
    "CapturedEvents",
    "CapturedLogs",
    "CapturedMetrics",
    "CapturedSpans",
    "capture_events",
    "capture_logs",
    "capture_metrics",
    "capture_spans",
]

E = TypeVar("E")


_MISSING = object()


def _matches(item: object, fields: dict[str, object]) -> bool:
    return all(getattr(item, key, _MISSING) == value for key, value in fields.items())


class CapturedEvents(list["Event"]):
    """The events emitted during a capture, in order, with a few ways to ask about them.

    >>> from buttress.events import RetryScheduled
    >>> events = CapturedEvents([RetryScheduled("pay", 1, 0.1, "OSError")])
    >>> events.count(RetryScheduled, name="pay"), events.names()
    (1, ['RetryScheduled'])
    """

    def of_type(self, kind: type[E], /, **fields: object) -> list[E]:
        """The events of type ``kind`` whose fields equal ``fields``."""
        return [e for e in self if isinstance(e, kind) and _matches(e, fields)]

    def count(self, kind: type[Event], /, **fields: object) -> int:  # type: ignore[override]
        """How many events of type ``kind`` have fields equal to ``fields``."""
        return len(self.of_type(kind, **fields))

    def names(self) -> list[str]:
        """The events' type names, in order: ``["RetryScheduled", "RetryFinished"]``."""
        return [type(e).__name__ for e in self]


@contextlib.contextmanager
def _listening(present: Callable[[Listener], bool], make: Callable[[], Listener]) -> Iterator[None]:
    """Add the listener ``make`` builds for the block, unless one is ``present`` already."""
    if any(present(x) for x in default_registry.listeners):
        yield
        return
    listener = make()
    default_registry.add(listener)
    try:
        yield
    finally:
        default_registry.remove(listener)


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Collect every event the default registry emits inside the ``with`` block.

    >>> with capture_events() as events:
    ...     pass
    >>> events
    []
    """
    events = CapturedEvents()
    listener: Listener = events.append
    default_registry.add(listener)
    try:
        yield events
    finally:
        default_registry.remove(listener)


# --- metrics ----------------------------------------------------------------------------


_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


class CapturedMetrics:
    """A fresh Prometheus registry that buttress records into during the capture."""

    __slots__ = ("metrics_registry",)

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.metrics_registry = metrics_registry
        """The ``prometheus_client.CollectorRegistry`` buttress records into."""

    def value(self, name: str, /, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``.

        ``name`` is a sample name as exposed (``buttress_retry_attempts_total``). A
        known metric with no matching sample is 0; an unknown name raises ``LookupError``.
        """
        total = 0.0
        known = False
        for family in self.metrics_registry.collect():
            for sample in family.samples:
                if sample.name != name:
                    continue
                known = True
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        if not known and not self._declared(name):
            total_name = name + "_total"
            hint = f" (did you mean {total_name!r}?)" if self._declared(total_name) else ""
            raise LookupError(f"no metric sample called {name!r} in the captured registry{hint}")
        return total

    def _declared(self, name: str) -> bool:
        # A labelled family with no child yet exposes no sample; it is known all the same,
        # under the sample names its type would expose.
        for family in self.metrics_registry.collect():
            suffixes = _SAMPLE_SUFFIXES.get(family.type, ("",))
            if any(name == family.name + suffix for suffix in suffixes):
                return True
        return False

    def __repr__(self) -> str:
        return f"CapturedMetrics({self.metrics_registry!r})"


def _follows_target(listener: Listener) -> bool:
    from ..telemetry._listeners import PrometheusListener

    return isinstance(listener, PrometheusListener) and listener.follows_target


@contextlib.contextmanager
def capture_metrics() -> Iterator[CapturedMetrics]:
    """Record buttress's metrics into a fresh registry inside the block, then restore."""
    from prometheus_client import CollectorRegistry

    from ..telemetry import _metrics
    from ..telemetry._listeners import PrometheusListener

    registry = CollectorRegistry()
    _metrics.metrics_for(registry)  # every buttress_* family exists from the start
    previous = _metrics.target_registry()
    _metrics.set_target_registry(registry)
    try:
        with _listening(_follows_target, PrometheusListener):
            yield CapturedMetrics(registry)
    finally:
        _metrics.set_target_registry(previous)


# --- logs -------------------------------------------------------------------------------

# Attributes every LogRecord has: the rest of a record's fields came as ``extra``.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class CapturedLogs(list[dict[str, Any]]):
    """buttress's log events as dicts: ``event``, ``level``, ``logger`` and the fields.

    >>> logs = CapturedLogs([{"event": "retry_scheduled", "level": "info", "attempt": 1}])
    >>> logs.named("retry_scheduled", attempt=1) == logs
    True
    """

    def named(self, event: str, /, **fields: object) -> list[dict[str, Any]]:
        """The log events called ``event`` whose fields equal ``fields``."""
        return [
            entry
            for entry in self
            if entry.get("event") == event
            and all(entry.get(k, _MISSING) == v for k, v in fields.items())
        ]

    def names(self) -> list[str]:
        """The log events' names, in order."""
        return [str(entry.get("event")) for entry in self]


class _Collect(logging.Handler):
    def __init__(self, into: CapturedLogs) -> None:
        super().__init__(logging.DEBUG)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        entry: dict[str, Any] = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_KEYS)
        self._into.append(entry)


@contextlib.contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[CapturedLogs]:
    """Collect what the ``buttress`` loggers (``buttress``, ``buttress.access``...) log
    at ``level`` or above inside the block, whatever the logging configuration."""
    from ..telemetry._listeners import LogListener

    logs = CapturedLogs()
    handler = _Collect(logs)
    logger = logging.getLogger("buttress")
    previous = logger.level
    # The logger's own level decides whether buttress formats anything at all.
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        with _listening(lambda x: isinstance(x, LogListener), LogListener):
            yield logs
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# --- spans ------------------------------------------------------------------------------


class CapturedSpans:
    """The spans that ended during the capture, recorded by the global tracer provider."""

    __slots__ = ("_exporter", "provider")

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        """The global SDK ``TracerProvider`` (also for code that takes ``tracer_provider=``)."""
        self._exporter = exporter

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def names(self) -> list[str]:
        """The finished spans' names, in the order they ended."""
        return [span.name for span in self.spans]

    def named(self, name: str, /) -> list[ReadableSpan]:
        """The finished spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self._exporter.clear()

    def __repr__(self) -> str:
        return f"CapturedSpans({self.names()!r})"


@contextlib.contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Record every span that ends inside the block (from any thread).

    The first capture sets a global SDK tracer provider if none is set (a process can
    set it only once); if the application set its own SDK provider, captures attach to
    it. Either way spans go to the capture only while one is open.
    """
    from . import _span_router

    provider, exporter, token = _span_router.open_capture()
    try:
        with _listening(_span_router.is_span_listener, _span_router.span_listener):
            yield CapturedSpans(provider, exporter)
    finally:
        _span_router.close_capture(token)
