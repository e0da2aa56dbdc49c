"""Spans of one test, in a tracer provider of its own.

``buttress.testing.capture_spans`` sets the process's global SDK tracer provider, once and
for good; FastAPI's native telemetry then starts server spans of its own in every later
test of the process. These tests hand their provider to what they test instead
(``tracer_provider=``), so the global one stays unset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class LocalSpans:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def names(self) -> list[str]:
        return [span.name for span in self.spans]

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]


@contextlib.contextmanager
def local_spans() -> Iterator[LocalSpans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield LocalSpans(provider, exporter)
    finally:
        provider.shutdown()
