"""OTLP (and console) export of metrics and logs, from the standard ``OTEL_*`` variables.

As for traces (``_otel.py``): :func:`export_plan` reads and checks the environment
before anything is installed, so a bad value fails with its name and nothing half set
up; :func:`install_metrics` and :func:`install_logs` import the SDK only when asked for.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ._otel import _get, _installed

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "ExportPlan",
    "OTLPLogHandler",
    "export_plan",
    "install_logs",
    "install_metrics",
    "without_otel",
]

_METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")
_LOG_EXPORTERS = ("otlp", "console", "none")
_MODULES = {
    ("metrics", "http/protobuf"): "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    ("metrics", "grpc"): "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    ("logs", "http/protobuf"): "opentelemetry.exporter.otlp.proto.http._log_exporter",
    ("logs", "grpc"): "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
}
_PACKAGES = {
    "http/protobuf": "buttress[otlp] (opentelemetry-exporter-otlp-proto-http)",
    "grpc": "opentelemetry-exporter-otlp-proto-grpc",
}
_AGGREGATIONS = ("explicit_bucket_histogram", "base2_exponential_bucket_histogram")
_TEMPORALITIES = ("cumulative", "delta", "lowmemory")


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """The metric and log exporters the environment asks for, checked."""

    metric_exporters: tuple[str, ...]  # "prometheus" means our registry and /metrics
    metric_protocol: str
    interval_ms: int
    timeout_ms: int
    log_exporters: tuple[str, ...]
    log_protocol: str

    @property
    def prometheus(self) -> bool:
        return "prometheus" in self.metric_exporters

    @property
    def otel_metrics(self) -> tuple[str, ...]:
        return tuple(x for x in self.metric_exporters if x != "prometheus")


def _exporters(
    environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    raw = _get(environ, name)
    if raw is None:
        return default
    chosen = tuple(x.strip().lower() for x in raw.split(",") if x.strip())
    for exporter in chosen:
        if exporter not in allowed:
            raise ConfigurationError(f"{name}={raw!r}: use {', '.join(allowed)} (comma-separated)")
    return tuple(dict.fromkeys(x for x in chosen if x != "none"))


def _milliseconds(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(environ, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigurationError(f"{name}={raw!r}: use a positive whole number of milliseconds")
    return int(raw)


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    value = _get(environ, name)
    if value is None:
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
        value = _get(environ, name) or "http/protobuf"
    if value not in _PACKAGES:
        raise ConfigurationError(f"{name}={value!r}: use http/protobuf or grpc")
    return value


def _check_endpoint(environ: Mapping[str, str], name: str) -> None:
    from urllib.parse import urlsplit

    value = _get(environ, name)
    if value is not None:
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigurationError(f"{name}={value!r}: use an http:// or https:// URL")


def _check_headers(environ: Mapping[str, str], name: str) -> None:
    # The exporters skip a malformed pair with a warning; an operator's typo in an auth
    # header would then show up only as rejected exports.
    value = _get(environ, name)
    if value is None:
        return
    for pair in value.split(","):
        key, sep, _ = pair.partition("=")
        if pair.strip() and (not sep or not key.strip()):
            raise ConfigurationError(f"{name}={value!r}: use key=value pairs, comma-separated")


def _check_installed(signal: str, protocol: str) -> None:
    if not _installed(_MODULES[(signal, protocol)]):
        raise ConfigurationError(
            f"OTLP {signal} export over {protocol!r} needs {_PACKAGES[protocol]}: install it, "
            f"or take otlp out of OTEL_{signal.upper()}_EXPORTER"
        )


def _check_propagators(environ: Mapping[str, str]) -> None:
    # The OpenTelemetry API reads the variable when opentelemetry.propagate is first
    # imported and raises ValueError there for a name it cannot load: checked here first,
    # so the mistake is reported by configure(), naming the variable.
    from importlib.metadata import entry_points

    raw = _get(environ, "OTEL_PROPAGATORS")
    if raw is None:
        return
    for name in (x.strip() for x in raw.split(",") if x.strip()):
        if name != "none" and not entry_points(group="opentelemetry_propagator", name=name):
            raise ConfigurationError(
                f"OTEL_PROPAGATORS={raw!r}: no propagator named {name!r} is installed "
                "(tracecontext, baggage, or b3/jaeger with their packages)"
            )


def export_plan(environ: Mapping[str, str] = os.environ) -> ExportPlan:
    """Read the metric and log variables; a bad value raises ``ConfigurationError``."""
    # Unset, metrics stay on /metrics only and logs on stderr only, as before: turning on
    # OTLP export of traces does not start pushing metrics and logs somewhere unasked.
    metrics = _exporters(environ, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS, ("prometheus",))
    logs = _exporters(environ, "OTEL_LOGS_EXPORTER", _LOG_EXPORTERS, ())
    interval = _milliseconds(environ, "OTEL_METRIC_EXPORT_INTERVAL", 60_000)
    timeout = _milliseconds(environ, "OTEL_METRIC_EXPORT_TIMEOUT", 30_000)
    metric_protocol = _protocol(environ, "metrics")
    log_protocol = _protocol(environ, "logs")
    for name in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"):
        _check_endpoint(environ, name)
    for name in (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    ):
        _check_headers(environ, name)
    for name, allowed in (
        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", _AGGREGATIONS),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", _TEMPORALITIES),
    ):
        value = _get(environ, name)
        if value is not None and value.lower() not in allowed:
            raise ConfigurationError(f"{name}={value!r}: use {' or '.join(allowed)}")
    _check_propagators(environ)
    if "otlp" in metrics:
        _check_installed("metrics", metric_protocol)
    if "otlp" in logs:
        _check_installed("logs", log_protocol)
    return ExportPlan(metrics, metric_protocol, interval, timeout, logs, log_protocol)


def without_otel(plan: ExportPlan) -> ExportPlan:
    """``plan`` with Prometheus alone for metrics and no log export (``OTEL_SDK_DISABLED``)."""
    import dataclasses

    kept = ("prometheus",) if plan.prometheus else ()
    return dataclasses.replace(plan, metric_exporters=kept, log_exporters=())


def install_metrics(plan: ExportPlan, resource: Resource) -> MeterProvider | None:
    """A meter provider exporting as ``plan`` says, or ``None`` when only Prometheus is asked.

    The provider is ours alone (never set globally): it carries buttress's instruments,
    and an application's own meter provider is left as it is.
    """
    if not plan.otel_metrics:
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    readers = []
    for name in plan.otel_metrics:
        exporter: MetricExporter
        if name == "console":
            exporter = ConsoleMetricExporter()
        else:
            module = importlib.import_module(_MODULES[("metrics", plan.metric_protocol)])
            # Reads the endpoint, headers, temporality and histogram aggregation variables.
            exporter = module.OTLPMetricExporter()
        readers.append(
            PeriodicExportingMetricReader(
                exporter,
                export_interval_millis=plan.interval_ms,
                export_timeout_millis=plan.timeout_ms,
            )
        )
    return MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)


def install_logs(plan: ExportPlan, resource: Resource) -> LoggerProvider | None:
    """A logger provider exporting as ``plan`` says, or ``None`` when no export is asked."""
    if not plan.log_exporters:
        return None
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        ConsoleLogRecordExporter,
        LogRecordExporter,
    )

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for name in plan.log_exporters:
        exporter: LogRecordExporter
        if name == "console":
            exporter = ConsoleLogRecordExporter()
        else:
            module = importlib.import_module(_MODULES[("logs", plan.log_protocol)])
            exporter = module.OTLPLogExporter()
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


# Keys of the JSON line that an OTLP log record carries in its own fields.
_OWN_FIELDS = frozenset(("event", "timestamp", "level", "trace_id", "span_id"))
_SKIPPED_LOGGERS = ("opentelemetry",)  # an exporter's own complaints would feed back into it


class OTLPLogHandler(logging.Handler):
    """Every record the root logger sees, as an OTLP log record.

    The record is rendered by the same structlog chain as the JSON line on stderr (so
    both carry the same fields), then split: the event is the body, the other fields are
    attributes, and the context current at the call gives the trace and span ids.
    """

    def __init__(self, provider: LoggerProvider, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._provider = provider
        self._loggers: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIPPED_LOGGERS):
            return
        try:
            from opentelemetry._logs import LogRecord, SeverityNumber

            fields = json.loads(self.format(record))
            body = fields.get("event", record.getMessage())
            attributes = {
                key: value if isinstance(value, str | int | float | bool) else json.dumps(value)
                for key, value in fields.items()
                if key not in _OWN_FIELDS and value is not None
            }
            attributes["logger"] = record.name
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = self._provider.get_logger(record.name)
            level = "WARN" if record.levelname == "WARNING" else record.levelname
            logger.emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    context=_context(fields.get("trace_id"), fields.get("span_id")),
                    severity_text=level,
                    severity_number=SeverityNumber(_severity(record.levelno)),
                    body=body if isinstance(body, str) else json.dumps(body),
                    attributes=attributes,
                )
            )
        except Exception:
            self.handleError(record)


def _context(trace_id: object, span_id: object) -> Any:
    """The context whose span the record belongs to.

    The line's own ids win: the access line of a WSGI response is written when the body
    has been sent, after the request's context was left, and names its request's span.
    """
    from opentelemetry import trace
    from opentelemetry.context import get_current

    current = get_current()
    if not (isinstance(trace_id, str) and isinstance(span_id, str)):
        return current
    now = trace.get_current_span(current).get_span_context()
    try:
        wanted = (int(trace_id, 16), int(span_id, 16))
    except ValueError:
        return current
    if now.is_valid and (now.trace_id, now.span_id) == wanted:
        return current
    span = trace.NonRecordingSpan(trace.SpanContext(*wanted, is_remote=False))
    return trace.set_span_in_context(span, current)


def _severity(level: int) -> int:
    # The data model's numbers: DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21 (and levels
    # between stdlib's named ones step up within the same range).
    if level < logging.DEBUG:
        return 1
    named = min(level, logging.CRITICAL) // 10 * 10
    return 5 + 4 * (named // 10 - 1) + min(level - named, 3)
