"""HTTP details the server middleware and the client transports share.

The method label (a known method, or ``_OTHER``, so clients cannot grow the number of
series) and query redaction (values of sensitive keys replaced before a query reaches a
span or a log line), so that a server span and a client span spell both alike.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from .telemetry import _names as names

__all__ = ["DEFAULT_REDACT_QUERY", "KNOWN_METHODS", "REDACTED", "normalise_method", "redact_query"]

# Methods the semantic conventions name; any other token becomes _OTHER.
KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
# Lower-case query keys whose values are replaced before being recorded anywhere.
DEFAULT_REDACT_QUERY: Final = frozenset(
    (
        "access_token", "api_key", "apikey", "auth", "awsaccesskeyid", "client_secret", "code",
        "id_token", "key", "password", "passwd", "refresh_token", "secret", "session", "sig",
        "signature", "token", "x-amz-credential", "x-amz-security-token", "x-amz-signature",
        "x-goog-credential", "x-goog-signature",
    )
)  # fmt: skip
REDACTED: Final = "REDACTED"


def normalise_method(method: str) -> tuple[str, str | None]:
    """``(label, original)``: the known method, or ``_OTHER`` and the original token."""
    if method in KNOWN_METHODS:
        return method, None
    upper = method.upper()
    if upper in KNOWN_METHODS:
        return upper, method
    return names.METHOD_OTHER, method


def redact_query(query: str, keys: frozenset[str] = DEFAULT_REDACT_QUERY) -> str:
    """``query`` with the value of every sensitive key replaced by ``REDACTED``.

    Keys are compared decoded and lower-cased (``%74oken`` is ``token``); everything else
    is kept as it was sent, so the recorded query reads like the one on the wire.
    """
    if not query:
        return query
    pairs = query.split("&")
    redacted = False
    for i, pair in enumerate(pairs):
        key, eq, _ = pair.partition("=")
        if eq and unquote(key).lower() in keys:
            pairs[i] = f"{key}={REDACTED}"
            redacted = True
    return "&".join(pairs) if redacted else query
