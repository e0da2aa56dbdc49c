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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

from .._errors import ButtressWarning, ConfigurationError
from ._logging import LogFormat
from ._slo import SLO

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry

__all__ = ["Telemetry", "configure", "configured_slos"]

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What :func:`configure` set up.

    ``registry`` is where buttress records metrics. ``tracer_provider`` is the provider
    configure installed, or ``None`` when the application had already set one (or
    ``OTEL_SDK_DISABLED=true``). ``multiprocess_dir`` is ``PROMETHEUS_MULTIPROC_DIR``
    when set. ``slos`` are the SLOs declared for the service (their latency thresholds
    become the middleware's bucket boundaries).
    """

    service: str
    version: str | None
    environment: str | None
    registry: CollectorRegistry
    tracer_provider: TracerProvider | None
    multiprocess_dir: str | None
    slos: tuple[SLO, ...] = ()

    def exposition_registry(self) -> CollectorRegistry:
        """The registry a ``/metrics`` endpoint should render.

        In multiprocess mode, a fresh registry that collects the live workers' files and
        the archive of dead ones (once per scrape); otherwise :attr:`registry`.
        """
        if self.multiprocess_dir is None:
            return self.registry
        from prometheus_client import CollectorRegistry

        from ._multiprocess import ArchiveCollector

        registry = CollectorRegistry()
        registry.register(ArchiveCollector(self.multiprocess_dir))
        return registry


_lock = threading.Lock()
_state: tuple[tuple[Any, ...], Telemetry] | None = None
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
    registry: CollectorRegistry | None = None,
    slos: Iterable[SLO] = (),
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
    - metrics: buttress records into ``registry`` (default ``prometheus_client.REGISTRY``),
      in multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set;
    - SLOs: ``slos`` declared here make their latency thresholds bucket boundaries of
      every middleware built afterwards without ``slos=`` of its own.

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
    if log_format not in get_args(LogFormat):
        raise ConfigurationError(f"log_format={log_format!r}: use json, console or auto")

    from prometheus_client import REGISTRY, CollectorRegistry

    if registry is not None and not isinstance(registry, CollectorRegistry):
        raise ConfigurationError(
            f"registry={registry!r}: use a prometheus_client.CollectorRegistry"
        )
    declared = tuple(slos)
    for slo in declared:
        if not isinstance(slo, SLO):
            raise ConfigurationError(f"slos: {slo!r} is not a buttress.SLO")
    key = (service, version, environment, level, log_format, registry, declared)
    with _lock:
        if _state is not None:
            previous, telemetry = _state
            if previous == key:
                return telemetry
            raise ConfigurationError(
                f"configure() was already called with service={previous[0]!r}, "
                f"version={previous[1]!r}, environment={previous[2]!r}, "
                f"log_level={previous[3]!r}, log_format={previous[4]!r}, registry="
                f"{previous[5]!r}, slos={previous[6]!r}; call it once, with "
                f"service={service!r}, ..."
            )
        from . import _logging, _metrics, _otel

        multiprocess_dir = _multiprocess_dir()
        plan = _otel.tracing_plan()  # raises before anything is installed
        if multiprocess_dir is not None:
            from ._multiprocess import mark_worker_started

            mark_worker_started(multiprocess_dir)  # so dead workers can be told from live
        target = registry if registry is not None else REGISTRY

        _logging.configure_logging(level=level, log_format=log_format, stream=sys.stderr)
        provider = _otel.install_tracing(
            plan, service=service, version=version, environment=environment
        )
        _metrics.set_target_registry(target)
        telemetry = Telemetry(
            service, version, environment, target, provider, multiprocess_dir, declared
        )
        _state = (key, telemetry)
    if declared and _slos_read_early:
        warnings.warn(
            "a middleware was built before configure(slos=...): its duration buckets lack "
            "these SLO thresholds; call configure() first, or give the middleware slos=",
            ButtressWarning,
            stacklevel=2,
        )
    return telemetry


def _reset() -> None:
    """Forget the configuration (for tests); a tracer provider, once set, stays."""
    global _state, _slos_read_early
    from prometheus_client import REGISTRY

    from . import _logging, _metrics

    with _lock:
        _state = None
        _slos_read_early = False
        _logging.unconfigure_logging()
        _metrics.set_target_registry(REGISTRY)
