from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from ._support import Telemetry
from ._transport_support import Tracing, new_tracing, new_upstream
from ._upstream import Upstream


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """A tracer provider exporting to memory and a fresh Prometheus registry."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Telemetry(provider, exporter, CollectorRegistry())
    provider.shutdown()


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    """A tracer provider for the transports' tests, exporting to memory."""
    yield from new_tracing()


@pytest.fixture
def upstream(tracing: Tracing) -> Iterator[Upstream]:
    """A real upstream server on 127.0.0.1 that the transports' tests call."""
    yield from new_upstream(tracing)
