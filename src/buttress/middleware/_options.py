"""The middleware's options, defined once: the keywords of every shell and of Django's settings.

``ASGIMiddleware(app, **options)``, ``WSGIMiddleware(app, **options)`` and
``BUTTRESS_MIDDLEWARE = {...}`` all take these names, so mypy checks the one line users
write (a misspelled option is an error at the call site, see tests/typing/) and
docs/middleware.md's table is generated from the fields' docstrings (scripts/options_table.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from datetime import timedelta

    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .._trust import ContinueTrace, TrustOption
    from ._health import Health
    from ._observer import SLOLike
    from ._shedding import Admission

__all__ = ["MiddlewareOptions", "check_option_names"]


class MiddlewareOptions(TypedDict, total=False):
    """The options of the ASGI, WSGI and Django middleware; every one may be left out.

    Each field's docstring says what it does and ends with its default; the table in
    docs/middleware.md is generated from them.
    """

    service: str | None
    """Added to access log lines as `service`; `OTEL_SERVICE_NAME`, when set, wins (as it
    does for the spans' resource).

    Default: `None`.
    """

    trusted_peers: TrustOption
    """Whose deadline, request id and baggage are honoured: a `TrustedPeers` (networks, a
    shared-secret header) or `"any"` ([security.md](security.md)).

    Default: `None` (nobody).
    """

    continue_trace: ContinueTrace
    """Whose `traceparent` is continued: `"trusted"` peers', `"always"`, `"never"`; a trace
    not continued is linked.

    Default: `"trusted"`.
    """

    request_id_header: str | None
    """Header read (from trusted peers) and echoed; `None` turns correlation ids off.

    Default: `"X-Request-ID"`.
    """

    deadline_header: str | None
    """Header whose budget (from trusted peers) becomes the request's deadline (below);
    `None` ignores it.

    Default: `"X-Buttress-Deadline"`.
    """

    tracing: bool
    """Server spans.

    Default: `True`.
    """

    tracer_provider: TracerProvider | None
    """The OpenTelemetry tracer provider (tests pass their own).

    Default: global.
    """

    metrics: bool
    """Prometheus RED metrics.

    Default: `True`.
    """

    metrics_registry: CollectorRegistry | None
    """The `CollectorRegistry` the instruments live in (below).

    Default: the one `buttress.configure` chose.
    """

    buckets: Iterable[float]
    """Duration histogram boundaries, in seconds.

    Default: OpenTelemetry's HTTP buckets.
    """

    slos: Iterable[SLOLike] | None
    """Objects with a `threshold` in seconds (any `SLOLike`, e.g. `buttress.slo.SLO`): each
    threshold becomes a bucket boundary ([slo.md](slo.md)).

    Default: the SLOs given to `buttress.configure`.
    """

    access_log: bool
    """One line per request on the `buttress.access` logger.

    Default: `True`.
    """

    exclude: Iterable[str]
    """Exact paths neither traced, measured nor logged.

    Default: `/health`, `/healthz`, `/livez`, `/readyz`, `/metrics`.
    """

    exclude_prefixes: Iterable[str]
    """Path prefixes likewise (`"/internal/"`).

    Default: `()`.
    """

    redact_query_keys: Iterable[str]
    """`fnmatch` patterns of query keys whose values become `REDACTED` (below).

    Default: keys containing `token`, `secret`, `password`, `key`, `auth`, `session`,
    ....
    """

    redact_headers: Iterable[str]
    """Captured headers recorded as `REDACTED`.

    Default: `authorization`, `cookie`, `set-cookie`, ....
    """

    capture_headers: Iterable[str]
    """Request headers recorded on the span as `http.request.header.<name>`.

    Default: `()`.
    """

    metrics_path: str | None
    """Serve Prometheus metrics at this path (off by default; below).

    Default: `None`.
    """

    metrics_token: str | None
    """Require `Authorization: Bearer <token>` on scrapes.

    Default: `None`.
    """

    metrics_networks: Iterable[str] | None
    """Require the scraper's address in one of these networks.

    Default: `None`.
    """

    metrics_max_age: float | timedelta
    """Seconds a rendered body is served again (0 to 60): at most one render per this long.

    Default: `1.0`.
    """

    error_response: bool
    """When the app raises before responding, answer the 500 here so it carries the id.

    Default: `True`.
    """

    clock: Callable[[], float]
    """The clock durations are read from.

    Default: `time.perf_counter`.
    """

    frameworks: tuple[str, ...]
    """Which `OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS` to read first (below): `("FASTAPI",
    "STARLETTE")` for ASGI, `("FLASK",)` for WSGI, `("DJANGO",)` for Django.

    Default: the shell's.
    """

    admission: Admission | None
    """An `Admission`: adaptive concurrency limit, criticality, deadline-aware shedding and
    rate limits for inbound requests (see [overload.md](overload.md)).

    Default: `None`.
    """

    health: Health | None
    """A `Health`: liveness and readiness endpoints reflecting breakers, bulkheads,
    admission and your checks (see [overload.md](overload.md#health)).

    Default: `None`.
    """


OPTION_NAMES = frozenset(MiddlewareOptions.__annotations__)


def check_option_names(options: dict[str, Any], where: str) -> None:
    """Refuse names that are not options (settings dicts escape the type checker)."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown option {unknown[0]!r}; the options are {sorted(OPTION_NAMES)}"
        )
