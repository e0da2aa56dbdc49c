"""The OpenTelemetry SDK, set up from the standard ``OTEL_*`` environment variables.

Nothing here imports the SDK at import time: :func:`tracing_plan` reads and checks the
environment (so bad values fail before anything is installed) and :func:`install_tracing`
imports the SDK, builds the tracer provider and sets it globally, unless the application
already set one. :func:`current_trace_ids` is the cheap look-up logs and exemplars use.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

__all__ = [
    "TracingPlan",
    "current_exemplar",
    "current_trace_ids",
    "install_tracing",
    "make_resource",
    "tracing_plan",
]


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as lowercase hex, or ``None``."""
    # Imported here (a dict look-up once loaded) so that `import buttress` stays cheap.
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_exemplar() -> dict[str, str] | None:
    """Exemplar labels for ``histogram.observe(value, exemplar=...)``, or ``None``.

    Only a sampled span makes an exemplar: an unsampled trace id would link a dashboard
    to a trace the backend never received.
    """
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}
_PACKAGES = {
    "http/protobuf": "buttress[otlp] (opentelemetry-exporter-otlp-proto-http)",
    "grpc": "opentelemetry-exporter-otlp-proto-grpc",
}


@dataclass(frozen=True, slots=True)
class TracingPlan:
    """What the environment asks for, checked: built into a provider by install_tracing."""

    disabled: bool
    exporters: tuple[str, ...]
    protocol: str
    sampler: str
    ratio: float


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def tracing_plan(environ: Mapping[str, str] = os.environ) -> TracingPlan:
    """Read the ``OTEL_*`` variables; a bad value raises ``ConfigurationError`` naming it."""
    from urllib.parse import urlsplit

    disabled = (_get(environ, "OTEL_SDK_DISABLED") or "false").lower()
    if disabled not in ("true", "false"):
        raise ConfigurationError(f"OTEL_SDK_DISABLED={disabled!r}: use true or false")

    sampler = (_get(environ, "OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if sampler not in _SAMPLERS:
        raise ConfigurationError(f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {_SAMPLERS}")
    ratio = 1.0
    raw_ratio = _get(environ, "OTEL_TRACES_SAMPLER_ARG")
    if sampler.endswith("traceidratio") and raw_ratio is not None:
        try:
            ratio = float(raw_ratio)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigurationError(
                f"OTEL_TRACES_SAMPLER_ARG={raw_ratio!r}: use a ratio from 0 to 1"
            )

    endpoints = {
        name: value
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if (value := _get(environ, name)) is not None
    }
    for name, value in endpoints.items():
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigurationError(f"{name}={value!r}: use an http:// or https:// URL")

    raw_exporters = _get(environ, "OTEL_TRACES_EXPORTER")
    if raw_exporters is None:
        # The spec's default is "otlp"; we export only when an endpoint says where to, so
        # a service with nothing configured sends nothing anywhere.
        exporters: tuple[str, ...] = ("otlp",) if endpoints else ()
    else:
        exporters = tuple(x.strip().lower() for x in raw_exporters.split(",") if x.strip())
        for exporter in exporters:
            if exporter not in _EXPORTERS:
                raise ConfigurationError(
                    f"OTEL_TRACES_EXPORTER={raw_exporters!r}: use otlp, console or none"
                )
        exporters = tuple(x for x in exporters if x != "none")

    protocol_var = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = _get(environ, protocol_var)
    if protocol is None:
        protocol_var = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = _get(environ, protocol_var) or "http/protobuf"
    if protocol not in _PROTOCOLS:
        raise ConfigurationError(f"{protocol_var}={protocol!r}: use http/protobuf or grpc")
    if "otlp" in exporters and not _installed(_PROTOCOLS[protocol]):
        raise ConfigurationError(
            f"OTLP export over {protocol!r} needs {_PACKAGES[protocol]}: install it, or unset "
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    return TracingPlan(disabled == "true", exporters, protocol, sampler, ratio)


def _sampler(plan: TracingPlan) -> Sampler:
    from opentelemetry.sdk.trace import sampling

    root: Sampler
    base = plan.sampler.removeprefix("parentbased_")
    if base == "always_on":
        root = sampling.ALWAYS_ON
    elif base == "always_off":
        root = sampling.ALWAYS_OFF
    else:
        root = sampling.TraceIdRatioBased(plan.ratio)
    return sampling.ParentBased(root) if plan.sampler.startswith("parentbased_") else root


def make_resource(service: str, version: str | None, environment: str | None) -> Resource:
    """The one resource of every signal: spans, OTLP metrics, OTLP logs and ``target_info``.

    The arguments win over ``OTEL_RESOURCE_ATTRIBUTES`` (argument, then environment,
    then the SDK's defaults), except ``OTEL_SERVICE_NAME``: deploy tooling sets it to
    rename a service without touching its code, so it wins over ``service``. Each process
    gets a ``service.instance.id`` of its own unless the variable sets one.
    """
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.name": service}
    if version is not None:
        attributes["service.version"] = version
    if environment is not None:
        attributes["deployment.environment.name"] = environment
    resource = Resource.create(attributes)  # reads both variables, ours merged last
    if "service.instance.id" not in resource.attributes:
        # Each worker process exports its own cumulative series over OTLP: without an
        # instance id, two gunicorn workers' points would collide as one series.
        import uuid

        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    name = _get(os.environ, "OTEL_SERVICE_NAME")
    if name is not None:
        resource = resource.merge(Resource({"service.name": name}))
    return resource


def install_tracing(plan: TracingPlan, *, resource: Resource) -> TracerProvider | None:
    """Set the global tracer provider from ``plan``; ``None`` when one was already set.

    An application (or an agent such as ``opentelemetry-instrument``) that set its own
    provider keeps it: spans then go wherever it sends them.
    """
    from opentelemetry import trace

    if plan.disabled or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    # shutdown_on_exit=False: the flush at the stop is ours, bounded in time (_shutdown.py).
    provider = TracerProvider(resource=resource, sampler=_sampler(plan), shutdown_on_exit=False)
    for name in plan.exporters:
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        else:
            module = importlib.import_module(_PROTOCOLS[plan.protocol])
            exporter = module.OTLPSpanExporter()  # reads the OTEL_EXPORTER_OTLP_* variables
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
