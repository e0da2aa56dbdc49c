"""Service level objectives as code: the model, the YAML file format, the bucket merge.

An SLO is availability (the share of responses that are not 5xx) or latency (the share
of responses faster than ``threshold`` seconds) over a selection of routes. Latency
thresholds must be histogram bucket boundaries so the SLI reads exact bucket counts:
:func:`buckets_with_thresholds` gives the middleware the boundaries to use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from .._errors import ButtressWarning, ConfigurationError
from ._names import (
    ALERT_SLO_BURN,
    DURATION_BUCKETS,
    LABEL_JOB,
    LABEL_SLO_ID,
    LABEL_SLO_NAME,
    LABEL_SLO_SERVICE,
    LABEL_SLO_WINDOW,
)
from ._windows import LONGEST_WINDOW_DAYS, burn_windows, prometheus_duration

__all__ = ["SLO", "SLOLike", "buckets_with_thresholds", "load_slos", "parse_duration"]

DEFAULT_WINDOW: Final = timedelta(days=30)
DEFAULT_MIN_ERRORS: Final = 3
"""Bad events an alert's long window must hold before it may fire (docs/slo.md, the guard).

Below it, the ratio of a handful of requests says little: one stray error among 60
requests an hour is 1.7%, over the 1.44% a 99.9% SLO pages at. With three, a service
that burns exactly its budget pages in fewer than 1 in 700 hours on the 1h window.
"""

# Names end up in label values, rule group names and dashboard URLs: keep them plain.
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_LABEL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALERT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MAX_WINDOW_DAYS: Final = 366


def _fail(slo: str, field_name: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"SLO {slo!r}, field {field_name!r}: {problem}")


def parse_duration(value: object) -> float:
    """Seconds from a number, a ``timedelta`` or a string like ``250ms``, ``30d``, ``1h30m``."""
    if isinstance(value, bool):
        raise ConfigurationError(f"not a duration: {value!r}")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ConfigurationError(f"not a duration: {value!r} (use seconds or e.g. '250ms', '30d')")


@dataclass(frozen=True, slots=True, init=False)
class SLO:
    """One service level objective.

    ``threshold`` (seconds or a ``timedelta``) makes it a latency SLO: the share of
    responses faster than the threshold (with ``successful_only``, faster and not failed).
    Without it, it is an availability SLO: the share of responses that are neither 5xx
    nor failed after the response started (an ``error_type`` label). ``routes`` are route
    templates (``http_route`` values) matched exactly; ``None`` means every route.
    ``window`` is the SLO period, a whole number of days, at least the 3 days of the
    longest alert window. ``selector`` holds exact label matchers for the request metric
    and defaults to ``{"job": service}``. ``min_errors`` is the number of bad events an
    alert's long window must hold before it may fire. ``labels`` are added to every rule
    generated for this SLO; ``alert_name`` names its burn-rate alerts and ``runbook_url``
    becomes their ``runbook_url`` annotation.

    ``signal="jobs"`` measures processed messages instead of requests (``buttress.jobs``):
    availability is the share of messages that ended well (``success`` among
    ``success``, ``dead_letter`` and ``expired``), latency the share of deliveries
    processed under ``threshold`` (a boundary of ``names.DURATION_BUCKETS``), over
    ``destinations`` (queue, stream or task names; ``None`` for all).
    """

    name: str
    service: str
    objective: float
    threshold: float | None
    routes: tuple[str, ...] | None
    window: timedelta
    min_errors: float
    selector: Mapping[str, str] = field(hash=False)
    labels: Mapping[str, str] = field(hash=False)
    description: str
    successful_only: bool
    alert_name: str
    runbook_url: str
    signal: Literal["http", "jobs"]
    destinations: tuple[str, ...] | None

    def __init__(
        self,
        name: str,
        *,
        service: str,
        objective: float,
        threshold: float | timedelta | None = None,
        routes: Iterable[str] | None = None,
        window: float | timedelta = DEFAULT_WINDOW,
        min_errors: float = DEFAULT_MIN_ERRORS,
        selector: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        description: str = "",
        successful_only: bool = False,
        alert_name: str = ALERT_SLO_BURN,
        runbook_url: str = "",
        signal: Literal["http", "jobs"] = "http",
        destinations: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _fail(str(name), "name", "use 1-63 letters, digits, '_', '.', '-'")
        if not isinstance(service, str) or not _NAME.fullmatch(service):
            raise _fail(name, "service", f"{service!r}: use letters, digits, '_', '.', '-'")
        if isinstance(min_errors, bool) or not isinstance(min_errors, int | float):
            raise _fail(name, "min_errors", f"{min_errors!r}: a number of bad events, 1 or more")
        if not 1 <= min_errors < math.inf:
            raise _fail(name, "min_errors", f"{min_errors!r}: a number of bad events, 1 or more")
        selector = {LABEL_JOB: service} if selector is None else selector
        checked_labels = _check_labels(name, "labels", {} if labels is None else labels)
        for reserved in (LABEL_SLO_ID, LABEL_SLO_SERVICE, LABEL_SLO_NAME, LABEL_SLO_WINDOW):
            if reserved in checked_labels:
                raise _fail(name, "labels", f"{reserved!r} is set by buttress")
        for key, text in (("description", description), ("runbook_url", runbook_url)):
            if not isinstance(text, str):
                raise _fail(name, key, f"{text!r} is not a string")
        if not isinstance(alert_name, str) or not _ALERT_NAME.fullmatch(alert_name):
            raise _fail(name, "alert_name", f"{alert_name!r}: letters, digits and '_'")
        if not isinstance(successful_only, bool):
            raise _fail(name, "successful_only", f"{successful_only!r}: true or false")
        checked_threshold = _threshold(name, threshold)
        if successful_only and checked_threshold is None:
            raise _fail(name, "successful_only", "only a latency SLO (with a threshold) takes it")
        if signal not in ("http", "jobs"):
            raise _fail(name, "signal", f"{signal!r}: use 'http' or 'jobs'")
        if signal == "http" and destinations is not None:
            raise _fail(name, "destinations", "only a jobs SLO (signal='jobs') takes it")
        if signal == "jobs":
            if routes is not None:
                raise _fail(name, "routes", "a jobs SLO selects destinations, not routes")
            # The jobs histogram has the fixed boundaries of names.DURATION_BUCKETS.
            if checked_threshold is not None and checked_threshold not in DURATION_BUCKETS:
                raise _fail(
                    name,
                    "threshold",
                    f"{checked_threshold!r} s is not a jobs histogram boundary "
                    f"({', '.join(f'{b:g}' for b in DURATION_BUCKETS)})",
                )
        values = {
            "name": name,
            "service": service,
            "objective": _objective(name, objective),
            "threshold": checked_threshold,
            "routes": _routes(name, routes),
            "window": _window(name, window),
            "min_errors": float(min_errors),
            "selector": _check_labels(name, "selector", selector),
            "labels": checked_labels,
            "description": description,
            "successful_only": successful_only,
            "alert_name": alert_name,
            "runbook_url": runbook_url,
            "signal": signal,
            "destinations": _routes(name, destinations, "destinations"),
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)
        _check_alerts_can_fire(self)

    @property
    def kind(self) -> Literal["availability", "latency"]:
        """``"latency"`` when a threshold is set, else ``"availability"``."""
        return "availability" if self.threshold is None else "latency"

    @property
    def id(self) -> str:
        """``service-name``: the ``sloth_id`` label of every rule for this SLO."""
        return f"{self.service}-{self.name}"

    @property
    def error_budget(self) -> float:
        """The share of requests allowed to fail: ``1 - objective``."""
        # Rounded so 1 - 0.999 reads 0.001 in rules, not 0.0010000000000000009.
        return float(f"{1 - self.objective:.12g}")

    @property
    def window_days(self) -> int:
        """The period in whole days."""
        return self.window.days

    @property
    def period(self) -> str:
        """The period as Prometheus and Sloth name it: ``30d``, ``4w`` (28 days), ``1w``."""
        return prometheus_duration(self.window_days)


def _check_alerts_can_fire(slo: SLO) -> None:
    # An error ratio never exceeds 1: a condition whose threshold is 1 or more never fires.
    dead = [w for w in burn_windows(slo.window_days) if w.factor * slo.error_budget >= 1]
    if not dead:
        return
    pages = [w for w in dead if w.severity == "page"]
    if len(pages) == 2:
        raise _fail(
            slo.name,
            "objective",
            f"{slo.objective!r} can never page: the page thresholds "
            f"({' and '.join(f'{w.factor:g} x {slo.error_budget:g}' for w in pages)}) are "
            "error ratios of 1 or more; raise the objective",
        )
    import warnings

    warnings.warn(
        f"SLO {slo.name!r}: with objective {slo.objective!r} the "
        + ", ".join(f"{w.factor:g}x {w.long}/{w.short} ({w.severity})" for w in dead)
        + " condition can never fire (the threshold is an error ratio of 1 or more)",
        ButtressWarning,
        stacklevel=3,
    )


def _objective(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, "objective", f"{value!r} is not a number")
    if 1 < value < 100:
        raise _fail(name, "objective", f"{value!r} looks like a percentage: write 0.999")
    if not 0 < value < 1:
        raise _fail(name, "objective", f"{value!r}: must be between 0 and 1, exclusive")
    return float(value)


def _threshold(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, "threshold", f"{value!r}: seconds, as a number")
    if not 0 < value < math.inf:
        raise _fail(name, "threshold", f"{value!r}: must be positive seconds")
    return float(value)


def _routes(name: str, value: object, what: str = "routes") -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise _fail(name, what, f"{value!r} is not a list of names")
    routes = tuple(value)
    if not routes:
        raise _fail(name, what, "empty: omit it (None) to select all")
    for route in routes:
        if not isinstance(route, str) or not route:
            raise _fail(name, what, f"{route!r} is not a name")
    return tuple(dict.fromkeys(routes))


def _window(name: str, value: object) -> timedelta:
    try:
        seconds = parse_duration(value)
    except ConfigurationError:
        raise _fail(name, "window", f"{value!r} is not a duration") from None
    days = seconds / 86400
    if days != int(days) or not 1 <= days <= _MAX_WINDOW_DAYS:
        raise _fail(name, "window", f"{value!r}: a whole number of days, 3 to 366")
    if days < LONGEST_WINDOW_DAYS:
        raise _fail(
            name,
            "window",
            f"{value!r}: shorter than the {LONGEST_WINDOW_DAYS}-day window of the slow ticket "
            f"alert; use {LONGEST_WINDOW_DAYS} days or more",
        )
    return timedelta(days=int(days))


def _check_labels(slo: str, field_name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _fail(slo, field_name, f"{value!r} is not a mapping of label names to values")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise _fail(slo, field_name, f"{key!r} is not a label name")
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise _fail(slo, field_name, f"{key}={item!r}: values are strings")
        result[key] = str(item)
    return result


class SLOLike(Protocol):
    """Anything with a latency ``threshold`` in seconds (``None`` for availability SLOs)."""

    @property
    def threshold(self) -> float | None: ...


def buckets_with_thresholds(
    slos: Iterable[SLOLike], base: Iterable[float] = DURATION_BUCKETS
) -> tuple[float, ...]:
    """The histogram boundaries ``base`` plus every latency SLO threshold, sorted.

    The middleware uses these buckets so that each latency SLI reads an exact bucket.
    """
    bounds = {float(b) for b in base}
    bounds.update(s.threshold for s in slos if s.threshold is not None)
    return tuple(sorted(bounds))


# --- the YAML file ----------------------------------------------------------------------

_TOP_FIELDS: Final = frozenset(
    {"version", "service", "labels", "selector", "min_errors", "runbook_url", "slos"}
)
_SLO_FIELDS: Final = frozenset(
    {
        "name",
        "service",
        "objective",
        "threshold",
        "routes",
        "window",
        "min_errors",
        "selector",
        "labels",
        "description",
        "successful_only",
        "alert_name",
        "runbook_url",
        "signal",
        "destinations",
    }
)

_MIN_RATE_GONE: Final = (
    "field 'min_rate' is gone: the low-traffic guard now counts bad events, use 'min_errors'"
)


def load_slos(path: str | Path) -> list[SLO]:
    """The SLOs declared in the YAML file ``path`` (schema in docs/slo.md).

    Every problem raises :class:`ConfigurationError` naming the file, the SLO and the field.
    """
    try:
        import yaml
    except ImportError:  # pragma: no cover - the yaml extra is part of every test install
        raise ConfigurationError(
            "reading SLO files needs PyYAML: pip install 'buttress[yaml]'"
        ) from None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the SLO file: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
    try:
        return slos_from_document(document)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def slos_from_document(document: object) -> list[SLO]:
    """The SLOs of an already parsed SLO file (a mapping with a ``slos`` list)."""
    if not isinstance(document, dict):
        raise ConfigurationError("the file must be a mapping with a 'slos' list")
    unknown = sorted(set(map(str, document)) - _TOP_FIELDS)
    if "min_rate" in unknown:
        raise ConfigurationError(_MIN_RATE_GONE)
    if unknown:
        raise ConfigurationError(f"unknown top-level field {unknown[0]!r}")
    if document.get("version", 1) != 1:
        raise ConfigurationError(f"field 'version': {document['version']!r}, only 1 is known")
    entries = document.get("slos")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError("field 'slos': a non-empty list of SLOs is required")
    defaults: dict[str, Any] = {
        key: document[key]
        for key in ("service", "min_errors", "selector", "runbook_url")
        if key in document
    }
    shared_labels = document.get("labels") or {}
    if not isinstance(shared_labels, dict):
        raise ConfigurationError(f"field 'labels': {shared_labels!r} is not a mapping")
    slos: list[SLO] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        slo = _slo_from_entry(index, entry, defaults, shared_labels)
        if slo.id in seen:
            raise _fail(slo.name, "name", f"declared twice for service {slo.service!r}")
        seen.add(slo.id)
        slos.append(slo)
    return slos


def _slo_from_entry(
    index: int, entry: object, defaults: dict[str, Any], shared_labels: dict[str, Any]
) -> SLO:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"SLO #{index + 1}: {entry!r} is not a mapping")
    name = entry.get("name")
    if not isinstance(name, str):
        raise _fail(f"#{index + 1}", "name", "required, a string")
    unknown = sorted(set(map(str, entry)) - _SLO_FIELDS)
    if "min_rate" in unknown:
        raise _fail(name, "min_rate", _MIN_RATE_GONE)
    if unknown:
        raise _fail(name, unknown[0], "unknown field")
    fields = {**defaults, **entry}
    for required in ("service", "objective"):
        if required not in fields:
            raise _fail(name, required, "required")
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict):
        raise _fail(name, "labels", f"{labels!r} is not a mapping")
    fields["labels"] = {**shared_labels, **labels}
    # A window goes to SLO as written ("4w", seconds), so its errors quote the file's text.
    if fields.get("threshold") is not None:
        try:
            fields["threshold"] = parse_duration(fields["threshold"])
        except ConfigurationError as exc:
            raise _fail(name, "threshold", str(exc)) from None
    return SLO(**fields)
