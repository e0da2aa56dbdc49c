"""Route spans to the open test capture: the OpenTelemetry SDK part of ``capture_spans``.

A process can set the global tracer provider once, but every test wants its own spans.
So one span processor, the router, is attached once to the global SDK provider and sends
each ended span to the capture open at that moment (none: the span is dropped). This
module imports the SDK; only :func:`buttress.testing.capture_spans` imports it.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from .._events import Listener

__all__ = ["close_capture", "is_span_listener", "open_capture", "span_listener"]


class _Router(SpanProcessor):
    """Exports each ended span to the current capture's exporter, if any."""

    def __init__(self) -> None:
        self.target: InMemorySpanExporter | None = None

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target  # one read: a capture may close on another thread
        if target is not None:
            target.export((span,))


_ROUTER = _Router()
_attached: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_lock = threading.Lock()


def _provider() -> TracerProvider:
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, trace.ProxyTracerProvider):
            # Explicit sampler: an OTEL_TRACES_SAMPLER in the environment must not make a
            # test's spans vanish.
            trace.set_tracer_provider(TracerProvider(sampler=ParentBased(ALWAYS_ON)))
            current = trace.get_tracer_provider()
        if not isinstance(current, TracerProvider):
            raise ConfigurationError(
                f"the global tracer provider is {current!r}, not an OpenTelemetry SDK "
                "TracerProvider: capture_spans cannot see its spans"
            )
        if current not in _attached:
            current.add_span_processor(_ROUTER)
            _attached.add(current)
        return current


def open_capture() -> tuple[TracerProvider, InMemorySpanExporter, InMemorySpanExporter | None]:
    """Send spans to a new exporter; returns the provider, it, and the token to close."""
    provider = _provider()
    exporter = InMemorySpanExporter()
    previous, _ROUTER.target = _ROUTER.target, exporter
    return provider, exporter, previous


def close_capture(token: InMemorySpanExporter | None) -> None:
    """Send spans back to where they went before the capture opened."""
    _ROUTER.target = token


def is_span_listener(listener: Listener) -> bool:
    from ..telemetry._listeners import SpanListener

    return isinstance(listener, SpanListener)


def span_listener() -> Listener:
    from ..telemetry._listeners import SpanListener

    return SpanListener()
