"""``buttress.configure()``: logs, traces and metrics for an application, in one call.

Libraries never call it; applications call it once at start-up. Everything it reads from
the environment is standard: the ``OTEL_*`` variables of the OpenTelemetry SDK and
``PROMETHEUS_MULTIPROC_DIR`` of prometheus-client. Heavy imports (the OpenTelemetry SDK,
structlog, prometheus-client) happen inside the call, so ``import buttress`` stays cheap.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, get_args

from .._errors import ButtressWarning, ConfigurationError
from ._logging import LogFormat
from ._slo import SLO

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["Telemetry", "configure", "configured_slos"]

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What :func:`configure` set up.

    ``metrics_registry`` is the Prometheus registry buttress records metrics into.
    ``tracer_provider`` is the provider configure installed, or ``None`` when the
    application had already set one (or ``OTEL_SDK_DISABLED=true``). ``multiprocess_dir`` is
    ``PROMETHEUS_MULTIPROC_DIR`` when set. ``slos`` are the SLOs declared for the service
    (their latency thresholds become the middleware's bucket boundaries). ``meter_provider``
    and ``logger_provider`` are the providers exporting buttress's metrics and the logs over
    OpenTelemetry, or ``None`` when ``OTEL_METRICS_EXPORTER``/``OTEL_LOGS_EXPORTER`` ask for
    none. ``resource`` is the one resource of every signal, as a mapping.
    """

    service: str
    version: str | None
    environment: str | None
    metrics_registry: CollectorRegistry
    tracer_provider: TracerProvider | None
    multiprocess_dir: str | None
    slos: tuple[SLO, ...] = ()
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    resource: Mapping[str, str] = field(default_factory=dict)

    def flush(self, timeout: float | timedelta | None = None) -> bool:
        """Export every pending span, metric point and log record now, within ``timeout``.

        Default: the ``flush_timeout`` given to :func:`configure`. ``False`` when the
        bound passed first (the export goes on in the background). configure() already
        flushes at the ASGI lifespan shutdown, on ``SIGTERM`` and at interpreter exit;
        call this where a process ends some other way (``os._exit``, a job runner).
        """
        from . import _shutdown

        return _shutdown.flush(None if timeout is None else _seconds(timeout, "timeout"))

    def exposition_registry(self) -> CollectorRegistry:
        """The registry a ``/metrics`` endpoint should render.

        In multiprocess mode, a fresh registry that collects the live workers' files and
        the archive of dead ones (once per scrape); otherwise :attr:`metrics_registry`.
        """
        if self.multiprocess_dir is None:
            return self.metrics_registry
        from prometheus_client import CollectorRegistry

        from ._multiprocess import ArchiveCollector

        registry = CollectorRegistry()
        registry.register(ArchiveCollector(self.multiprocess_dir))
        if self.resource:
            # One series for all workers: the per-process instance id would make each
            # scrape's target_info another worker's.
            shared = {k: v for k, v in self.resource.items() if k != "service.instance.id"}
            registry.register(TargetInfo(shared))
        return registry


class TargetInfo:
    """The ``target_info`` family: the resource as labels, as OpenTelemetry renders it.

    A scrape's series join to deploys and to the traces' resource through it
    (``* on(job, instance) group_left(service_version) target_info``).
    """

    def __init__(self, resource: Mapping[str, str]) -> None:
        import re

        self._labels = {re.sub(r"[^a-zA-Z0-9_]", "_", k): str(v) for k, v in resource.items()}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import InfoMetricFamily

        from ._names import TARGET_INFO

        yield InfoMetricFamily(TARGET_INFO, "Target metadata", value=self._labels)

    def describe(self) -> Iterator[Metric]:
        return self.collect()


_lock = threading.Lock()
_state: tuple[tuple[Any, ...], Telemetry] | None = None
_target_info: tuple[CollectorRegistry, TargetInfo] | None = None
_slos_read_early = False  # a middleware looked for declared SLOs before configure() ran


def configured_slos() -> tuple[SLO, ...]:
    """The SLOs given to :func:`configure` (none before it runs).

    The middleware reads them once, when it is built without ``slos=`` of its own.
    """
    global _slos_read_early
    state = _state
    if state is None:
        _slos_read_early = True
        return ()
    return state[1].slos


def _check_text(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name}={value!r}: use a non-empty string")


def _level(value: str | int) -> int:
    if isinstance(value, str) and value.upper() in _LEVELS:
        level: int = getattr(logging, value.upper())
        return level
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 50:
        return value
    raise ConfigurationError(f"log_level={value!r}: use one of {_LEVELS} or a level number")


def _seconds(value: object, name: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 3600:
        raise ConfigurationError(f"{name}={value!r}: use a number of seconds above 0")
    return float(value)


def _multiprocess_dir() -> str | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if path is None:
        return None
    if not (os.path.isdir(path) and os.access(path, os.W_OK)):
        raise ConfigurationError(
            f"PROMETHEUS_MULTIPROC_DIR={path!r}: use an existing writable directory"
        )
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        # prometheus-client picks its value class on import: set after it, metrics would
        # stay per process while the exposition read (empty) files.
        raise ConfigurationError(
            f"PROMETHEUS_MULTIPROC_DIR={path!r} was set after prometheus_client was imported: "
            "set it in the environment before the process starts"
        )
    return path


def configure(
    *,
    service: str,
    version: str | None = None,
    environment: str | None = None,
    log_level: str | int = "INFO",
    log_format: LogFormat = "auto",
    metrics_registry: CollectorRegistry | None = None,
    slos: Iterable[SLO] = (),
    flush_timeout: float | timedelta = 5.0,
) -> Telemetry:
    """Set up structured logs, OpenTelemetry tracing and Prometheus metrics.

    - logs: structlog and stdlib logging render through one root handler on stderr, as
      JSON lines (``log_format="json"``), for humans (``"console"``) or the console on a
      terminal and JSON otherwise (``"auto"``); each line carries request_id, trace_id and
      span_id;
    - traces: an SDK tracer provider with ``service`` (``OTEL_SERVICE_NAME`` wins),
      ``version`` and ``environment`` as resource attributes, the sampler from
      ``OTEL_TRACES_SAMPLER``, OTLP export when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
      a provider the application already set is kept;
    - metrics: buttress records into ``metrics_registry`` (default ``prometheus_client.REGISTRY``),
      in multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set;
    - metrics over OpenTelemetry as ``OTEL_METRICS_EXPORTER`` asks (otlp, console,
      prometheus, none; unset means prometheus only), with the semconv names and units;
    - logs over OpenTelemetry as ``OTEL_LOGS_EXPORTER`` asks (otlp, console), the JSON
      lines on stderr staying;
    - one resource on every signal, ``target_info`` on /metrics included;
    - SLOs: ``slos`` declared here make their latency thresholds bucket boundaries of
      every middleware built afterwards without ``slos=`` of its own;
    - the stop: everything pending is flushed, within ``flush_timeout`` seconds, at the
      ASGI lifespan shutdown, on SIGTERM and at interpreter exit.

    Calling it again with the same arguments returns the same :class:`Telemetry`; with
    other arguments it raises ``ConfigurationError`` (a tracer provider cannot be
    replaced, so a silent partial reconfiguration would mislead). Bad values raise
    ``ConfigurationError`` naming them, before anything is changed.
    """
    global _state
    _check_text("service", service, optional=False)
    _check_text("version", version, optional=True)
    _check_text("environment", environment, optional=True)
    level = _level(log_level)
    flush_seconds = _seconds(flush_timeout, "flush_timeout")
    if log_format not in get_args(LogFormat):
        raise ConfigurationError(f"log_format={log_format!r}: use json, console or auto")

    from prometheus_client import REGISTRY, CollectorRegistry

    if metrics_registry is not None and not isinstance(metrics_registry, CollectorRegistry):
        raise ConfigurationError(
            f"metrics_registry={metrics_registry!r}: use a prometheus_client.CollectorRegistry"
        )
    declared = tuple(slos)
    for slo in declared:
        if not isinstance(slo, SLO):
            raise ConfigurationError(f"slos: {slo!r} is not a buttress.slo.SLO")
    key = (
        service,
        version,
        environment,
        level,
        log_format,
        metrics_registry,
        declared,
        flush_seconds,
    )
    with _lock:
        if _state is not None:
            previous, telemetry = _state
            if previous == key:
                return telemetry
            raise ConfigurationError(
                f"configure() was already called with service={previous[0]!r}, "
                f"version={previous[1]!r}, environment={previous[2]!r}, "
                f"log_level={previous[3]!r}, log_format={previous[4]!r}, metrics_registry="
                f"{previous[5]!r}, slos={previous[6]!r}; call it once, with "
                f"service={service!r}, ..."
            )
        target = metrics_registry if metrics_registry is not None else REGISTRY
        telemetry = _install(key, target)
        _state = (key, telemetry)
    if declared and _slos_read_early:
        warnings.warn(
            "a middleware was built before configure(slos=...): its duration buckets lack "
            "these SLO thresholds; call configure() first, or give the middleware slos=",
            ButtressWarning,
            stacklevel=2,
        )
    return telemetry


def _install(key: tuple[Any, ...], target: CollectorRegistry) -> Telemetry:
    global _target_info
    from . import _logging, _metrics, _otel, _otel_export, _otel_metrics, _shutdown

    service, version, environment, level, log_format, _, declared, flush_seconds = key
    multiprocess_dir = _multiprocess_dir()
    plan = _otel.tracing_plan()  # these raise before anything is installed
    exports = _otel_export.export_plan()
    if multiprocess_dir is not None:
        from ._multiprocess import mark_worker_started

        mark_worker_started(multiprocess_dir)  # so dead workers can be told from live
    if plan.disabled:  # the SDK off: no signal of ours goes through it either
        exports = _otel_export.without_otel(exports)
    otel_resource = _otel.make_resource(service, version, environment)
    resource = {k: str(v) for k, v in otel_resource.attributes.items()}

    logger_provider = _otel_export.install_logs(exports, otel_resource)
    otlp_handler = None
    if logger_provider is not None:
        chosen = logger_provider

        def otlp_handler(formatter: logging.Formatter) -> logging.Handler:
            return _otel_export.OTLPLogHandler(chosen, formatter)

    _logging.configure_logging(
        level=level,
        log_format=log_format,
        stream=sys.stderr,
        resource=_log_fields(resource),
        otlp=otlp_handler,
    )
    provider = _otel.install_tracing(plan, resource=otel_resource)
    meter_provider = _otel_export.install_metrics(exports, otel_resource)
    meter = meter_provider.get_meter("buttress") if meter_provider is not None else None
    if _otel_metrics.choose(meter, prometheus=exports.prometheus) and meter is not None:
        warnings.warn(
            "a middleware or transport was built before configure(): it records into "
            "Prometheus only, not OTEL_METRICS_EXPORTER's choice; call configure() first",
            ButtressWarning,
            stacklevel=3,
        )
    _metrics.set_target_registry(target)
    if exports.prometheus and multiprocess_dir is None:
        info = TargetInfo(resource)
        target.register(info)
        _target_info = (target, info)
    # Spans first: the access log's records and the metric points describe the same
    # requests, and a trace is what an incident starts from.
    for made in (provider, logger_provider, meter_provider):
        if made is not None:
            _shutdown.register(made, timeout=flush_seconds)
    _shutdown.install_exit_hooks()
    return Telemetry(
        service,
        version,
        environment,
        target,
        provider,
        multiprocess_dir,
        declared,
        meter_provider,
        logger_provider,
        resource,
    )


def _log_fields(resource: Mapping[str, str]) -> dict[str, str]:
    from . import _names as n

    fields = {n.LOG_KEY_SERVICE: resource["service.name"]}
    for attribute, key in (
        ("service.version", n.LOG_KEY_SERVICE_VERSION),
        ("deployment.environment.name", n.LOG_KEY_ENVIRONMENT),
    ):
        if attribute in resource:
            fields[key] = resource[attribute]
    return fields


def _reset() -> None:
    """Forget the configuration (for tests); a tracer provider, once set, stays."""
    global _state, _slos_read_early, _target_info
    from prometheus_client import REGISTRY

    from . import _logging, _metrics, _otel_metrics, _shutdown

    with _lock:
        _state = None
        _slos_read_early = False
        _logging.unconfigure_logging()
        _otel_metrics.choose(None, prometheus=True)
        _metrics.set_target_registry(REGISTRY)
        _shutdown._reset()
        if _target_info is not None:
            _target_info[0].unregister(_target_info[1])
            _target_info = None
