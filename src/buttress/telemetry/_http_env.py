"""The OpenTelemetry instrumentations' HTTP variables, read once when a middleware is built.

``OTEL_PYTHON_EXCLUDED_URLS`` (and ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS``, which wins
for its framework), ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` and
``..._SERVER_RESPONSE``, ``..._SANITIZE_FIELDS``: the same meaning as in the
opentelemetry-instrumentation packages, so an operator's settings carry over. A middleware
option given explicitly wins over its variable (argument, then environment, then default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._errors import ConfigurationError

__all__ = ["HTTPEnvironment", "http_environment"]

_CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_"
_SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token


@dataclass(frozen=True, slots=True)
class HTTPEnvironment:
    """What the variables say; ``None`` where a variable is unset."""

    excluded: tuple[re.Pattern[str], ...] | None
    request_headers: tuple[str, ...] | None
    response_headers: tuple[str, ...] | None
    sanitize: tuple[str, ...] | None


def _items(environ: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def _headers(environ: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    found = _items(environ, name)
    if found is None:
        return None
    for header in found:
        if not _HEADER.match(header):
            raise ConfigurationError(
                f"{name}={environ[name]!r}: {header!r} is not a header name; list header "
                "names, comma-separated"
            )
    return tuple(h.lower() for h in found)


def http_environment(
    frameworks: Iterable[str] = (), environ: Mapping[str, str] = os.environ
) -> HTTPEnvironment:
    """Read and check the variables; a bad value raises ``ConfigurationError`` naming it."""
    excluded = None
    for name in [f"OTEL_PYTHON_{f}_EXCLUDED_URLS" for f in frameworks] + [
        "OTEL_PYTHON_EXCLUDED_URLS"
    ]:
        patterns = _items(environ, name)
        if patterns is None:
            continue
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as error:
                raise ConfigurationError(
                    f"{name}={environ[name]!r}: {pattern!r} is not a regular expression ({error})"
                ) from None
        excluded = tuple(compiled)
        break
    return HTTPEnvironment(
        excluded,
        _headers(environ, _CAPTURE + "REQUEST"),
        _headers(environ, _CAPTURE + "RESPONSE"),
        _headers(environ, _SANITIZE),
    )
