"""The middleware's options, defined once: the keywords of every shell and of Django's settings.

``ASGIMiddleware(app, **options)``, ``WSGIMiddleware(app, **options)`` and
``BUTTRESS_MIDDLEWARE = {...}`` all take these names, so mypy checks the one line users
write (a misspelled option is an error at the call site, see tests/typing/) and
docs/middleware.md's table is checked against them (tests/middleware/test_options.py).
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

    See docs/middleware.md for what each does and its default.
    """

    service: str | None
    request_id_header: str | None
    deadline_header: str | None
    tracing: bool
    tracer_provider: TracerProvider | None
    metrics: bool
    metrics_registry: CollectorRegistry | None
    buckets: Iterable[float]
    slos: Iterable[SLOLike] | None
    access_log: bool
    exclude: Iterable[str]
    exclude_prefixes: Iterable[str]
    redact_query_keys: Iterable[str]
    redact_headers: Iterable[str]
    capture_headers: Iterable[str]
    metrics_path: str | None
    error_response: bool
    trusted_peers: TrustOption
    continue_trace: ContinueTrace
    metrics_token: str | None
    metrics_networks: Iterable[str] | None
    metrics_max_age: float | timedelta
    clock: Callable[[], float]
    frameworks: tuple[str, ...]
    admission: Admission | None
    health: Health | None


OPTION_NAMES = frozenset(MiddlewareOptions.__annotations__)


def check_option_names(options: dict[str, Any], where: str) -> None:
    """Refuse names that are not options (settings dicts escape the type checker)."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown option {unknown[0]!r}; the options are {sorted(OPTION_NAMES)}"
        )
