"""httpx transports: the cost per request of each stack around the same "network".

Every contender sends through one shared in-process transport that answers 200 at once
(``httpx.MockTransport``), so what is measured is the stack, not the network:

- ``httpx``: a plain client, the baseline;
- ``otel-httpx``: opentelemetry-instrumentation-httpx's transport (a client span and a
  duration histogram per request);
- ``otel-httpx + tenacity``: the same, with tenacity retrying connection errors and
  429/502/503/504 around each call: the usual way to get what buttress's transport does;
- ``buttress``: ``ResilientTransport`` with its defaults (per-host retry and breaker, a
  client span per attempt, the Prometheus duration histogram and in-flight gauge,
  traceparent and correlation id propagation);
- ``buttress, no tracing SDK``: the same where no tracer provider is installed (spans are
  no-ops), for scale.

Spans go to a real SDK tracer provider (recorded, then dropped: no exporter), and both
stacks' metrics are recorded (ours into a Prometheus registry, OpenTelemetry's into an
SDK meter provider with an in-memory reader), so both do the work they would do in a
service. A second pair of tables makes every call inside an unsampled parent, the context a
service sampling 1% of its requests is in for the other 99% (the SDK's default
``ParentBased`` sampler then drops every client span). A last table repeats the run
against a real upstream on 127.0.0.1 (in a child process), where the network and the
server dominate.
"""

from __future__ import annotations

import os

# Stable HTTP semantic conventions for the OpenTelemetry instrumentation too, so both
# stacks produce the same attributes. Read once, when the instrumentation initialises.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from collections.abc import Awaitable, Callable

import httpx
import tenacity
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import (
    AsyncOpenTelemetryTransport,
    SyncOpenTelemetryTransport,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, NoOpTracerProvider, SpanContext
from prometheus_client import CollectorRegistry

from benchmarks._harness import Result, compare_async, compare_sync, report
from buttress.httpx import AsyncResilientTransport, ResilientTransport

URL = "http://upstream.test/items/1"
RETRY_STATUSES = frozenset((429, 502, 503, 504))
RETRY_ON = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
AGAINST = {"baseline": "httpx", "against": "otel-httpx + tenacity"}
# What the server middleware leaves current for a request its sampler dropped.
_UNSAMPLED = trace.set_span_in_context(
    NonRecordingSpan(SpanContext(0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174, False))
)


def _unsampled(call: Callable[[], object]) -> Callable[[], object]:
    def under_unsampled_parent() -> object:
        token = otel_context.attach(_UNSAMPLED)
        try:
            return call()
        finally:
            otel_context.detach(token)

    return under_unsampled_parent


def _unsampled_async(call: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    async def under_unsampled_parent() -> object:
        token = otel_context.attach(_UNSAMPLED)
        try:
            return await call()
        finally:
            otel_context.detach(token)

    return under_unsampled_parent


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"ok")


def _tenacity() -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RETRY_ON)
        | tenacity.retry_if_result(lambda r: r.status_code in RETRY_STATUSES),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5),
        reraise=True,
    )


def _tenacity_async() -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(RETRY_ON)
        | tenacity.retry_if_result(lambda r: r.status_code in RETRY_STATUSES),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5),
        reraise=True,
    )


def _providers() -> tuple[TracerProvider, MeterProvider, CollectorRegistry]:
    return TracerProvider(), MeterProvider([InMemoryMetricReader()]), CollectorRegistry()


def sync_contenders(
    inner: httpx.BaseTransport, url: str
) -> tuple[dict[str, Callable[[], object]], list[httpx.Client]]:
    tracer_provider, meter_provider, registry = _providers()
    plain = httpx.Client(transport=inner)
    otel = httpx.Client(
        transport=SyncOpenTelemetryTransport(
            inner, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    )
    ours = httpx.Client(
        transport=ResilientTransport(
            inner, tracer_provider=tracer_provider, metrics_registry=registry
        )
    )
    untraced = httpx.Client(
        transport=ResilientTransport(
            inner, tracer_provider=NoOpTracerProvider(), metrics_registry=CollectorRegistry()
        )
    )
    retrying = _tenacity()

    def peer() -> object:
        return retrying(otel.get, url)

    contenders: dict[str, Callable[[], object]] = {
        "httpx": lambda: plain.get(url),
        "otel-httpx": lambda: otel.get(url),
        "otel-httpx + tenacity": peer,
        "buttress": lambda: ours.get(url),
        "buttress, no tracing SDK": lambda: untraced.get(url),
    }
    return contenders, [plain, otel, ours, untraced]


def async_contenders(
    inner: httpx.AsyncBaseTransport, url: str
) -> tuple[dict[str, Callable[[], Awaitable[object]]], list[httpx.AsyncClient]]:
    tracer_provider, meter_provider, registry = _providers()
    plain = httpx.AsyncClient(transport=inner)
    otel = httpx.AsyncClient(
        transport=AsyncOpenTelemetryTransport(
            inner, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    )
    ours = httpx.AsyncClient(
        transport=AsyncResilientTransport(
            inner, tracer_provider=tracer_provider, metrics_registry=registry
        )
    )
    untraced = httpx.AsyncClient(
        transport=AsyncResilientTransport(
            inner, tracer_provider=NoOpTracerProvider(), metrics_registry=CollectorRegistry()
        )
    )
    retrying = _tenacity_async()

    async def peer() -> object:
        return await retrying(otel.get, url)

    contenders: dict[str, Callable[[], Awaitable[object]]] = {
        "httpx": lambda: plain.get(url),
        "otel-httpx": lambda: otel.get(url),
        "otel-httpx + tenacity": peer,
        "buttress": lambda: ours.get(url),
        "buttress, no tracing SDK": lambda: untraced.get(url),
    }
    return contenders, [plain, otel, ours, untraced]


def _ratio(results: list[Result], peer: str = "otel-httpx") -> float:
    best = {r.name: r.best for r in results}
    base = best["httpx"]
    return (best["buttress"] - base) / (best[peer] - base)


def _ratios(title: str, results: list[Result]) -> str:
    best = {r.name: r.best for r in results}
    cells = [
        f"{peer}: {_ratio(results, peer):.2f}"
        for peer in ("otel-httpx", "otel-httpx + tenacity")
        if best[peer] > best["httpx"]
    ]
    return f"{title}: buttress overhead / peer overhead = " + ", ".join(cells) + "\n"


def _in_process(number: int, rounds: int) -> tuple[list[str], dict[str, float]]:
    sections: list[str] = []
    ratios: dict[str, float] = {}
    for label, sampled in (("", True), (", unsampled parent", False)):
        contenders, clients = sync_contenders(httpx.MockTransport(_answer), URL)
        if not sampled:
            contenders = {name: _unsampled(call) for name, call in contenders.items()}
        sync = compare_sync(contenders, number=number, rounds=rounds)
        for client in clients:
            client.close()
        acontenders, _ = async_contenders(httpx.MockTransport(_answer), URL)
        if not sampled:
            acontenders = {name: _unsampled_async(call) for name, call in acontenders.items()}
        asyn = compare_async(acontenders, number=number, rounds=rounds)
        key = "" if sampled else "_unsampled"
        ratios[f"sync{key}_vs_otel"] = _ratio(sync)
        ratios[f"async{key}_vs_otel"] = _ratio(asyn)
        sections += [
            report(f"httpx stacks, in-process transport, sync{label}", sync, **AGAINST),
            _ratios(f"sync{label}", sync),
            report(f"httpx stacks, in-process transport, async{label}", asyn, **AGAINST),
            _ratios(f"async{label}", asyn),
        ]
    return sections, ratios


def _loopback(number: int, rounds: int) -> list[str]:
    # The test suite's upstream, in a child process so it does not share our GIL.
    from tests.middleware._upstream import SpawnedUpstream

    with SpawnedUpstream() as upstream:
        inner = httpx.HTTPTransport()
        contenders, clients = sync_contenders(inner, f"{upstream.url}/ok")
        sync = compare_sync(contenders, number=number, rounds=rounds)
        for client in clients:
            client.close()
    return [
        report("httpx stacks, real upstream on 127.0.0.1, sync", sync, **AGAINST),
        _ratios("loopback sync", sync),
    ]


def main(quick: bool = False) -> str:
    number, rounds = (300, 3) if quick else (3_000, 5)
    sections, ratios = _in_process(number, rounds)
    sections += _loopback(max(number // 3, 100), rounds)
    result = " ".join(f"{key}={value:.3f}" for key, value in ratios.items())
    return "\n".join(sections) + f"\nRESULT httpx {result}\n"
