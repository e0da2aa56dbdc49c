"""Trace ids for logs and exemplars, and the OTEL_* plan, without installing anything."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest

from buttress.telemetry import _otel


def test_no_span_no_ids() -> None:
    assert _otel.current_trace_ids() is None
    assert _otel.current_exemplar() is None


def test_ids_and_exemplar_of_a_sampled_span() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        ids = _otel.current_trace_ids()
        exemplar = _otel.current_exemplar()
    context = span.get_span_context()
    assert ids == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    assert exemplar == {"trace_id": ids[0], "span_id": ids[1]}


def test_an_unsampled_span_has_ids_for_logs_but_no_exemplar() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    with provider.get_tracer("t").start_as_current_span("s"):
        assert _otel.current_trace_ids() is not None
        assert _otel.current_exemplar() is None


def test_the_exemplar_reaches_openmetrics_exposition() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("d_seconds", "d", registry=registry, buckets=(0.1, 1.0))
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("s"):
        exemplar = _otel.current_exemplar()
        histogram.observe(0.05, exemplar=exemplar)
    assert exemplar is not None
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    assert f'# {{span_id="{exemplar["span_id"]}",trace_id="{exemplar["trace_id"]}"}} 0.05' in text


def test_plan_defaults_export_nothing() -> None:
    plan = _otel.tracing_plan({})
    assert plan == _otel.TracingPlan(
        disabled=False,
        exporters=(),
        protocol="http/protobuf",
        sampler="parentbased_always_on",
        ratio=1.0,
    )


def test_plan_reads_the_standard_variables() -> None:
    plan = _otel.tracing_plan(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:4318/v1/traces",
            "OTEL_TRACES_EXPORTER": "otlp,console",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert (plan.exporters, plan.sampler, plan.ratio) == (
        ("otlp", "console"),
        "parentbased_traceidratio",
        0.25,
    )
    assert _otel.tracing_plan({"OTEL_TRACES_EXPORTER": "none"}).exporters == ()
