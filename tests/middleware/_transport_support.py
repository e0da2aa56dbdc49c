"""Shared pieces of the transport tests: traces in memory, a fresh registry, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

import buttress
from buttress.httpx import RETRY_ON

from ._upstream import Upstream


@dataclass
class Tracing:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    metrics: CollectorRegistry

    def spans(self, kind: SpanKind | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if kind is None or s.kind == kind]


def new_tracing() -> Iterator[Tracing]:
    """A tracer provider exporting to memory and a fresh Prometheus registry."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, exporter, CollectorRegistry())
    provider.shutdown()


def new_upstream(tracing: Tracing) -> Iterator[Upstream]:
    """An upstream that starts server spans on the same tracer provider."""
    with Upstream(tracer_provider=tracing.provider) as server:
        yield server


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


_RETRY_OPTIONS = ("attempts", "deadline", "wait_initial", "wait_max", "budget", "retry_after_max")


def with_retry(options: dict[str, Any], clock: Callable[[], float], sleep: Any) -> dict[str, Any]:
    """``options`` for a transport, the retry's own (``attempts=`` ...) folded into ``retry=``.

    The transport's default retry, on ``clock`` and ``sleep``: three attempts within 30 s,
    a server's wait honoured up to 5 s.
    """
    if "retry" in options:
        return options
    settings: dict[str, Any] = {"attempts": 3, "deadline": 30.0, "retry_after_max": 5.0}
    settings.update({key: options.pop(key) for key in _RETRY_OPTIONS if key in options})
    if settings["attempts"] == 1:
        options["retry"] = None
        return options
    options["retry"] = buttress.retry(on=RETRY_ON, clock=clock, sleep=sleep, **settings)
    return options
