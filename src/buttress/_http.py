"""HTTP details the server middleware and the client transports share.

The method label (a known method, or ``_OTHER``, so clients cannot grow the number of
series), the status label (a code from 100 to 599, or ``_OTHER``), and query redaction
(values of sensitive keys replaced before a query reaches a span or a log line), so
that a server span and a client span spell them alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate
from typing import Final
from urllib.parse import unquote_plus

from ._errors import ConfigurationError
from .telemetry import _names as names

__all__ = [
    "DEFAULT_REDACT_QUERY",
    "KNOWN_METHODS",
    "REDACTED",
    "Redactor",
    "normalise_method",
    "redact_query",
    "status_label",
]

# Methods the semantic conventions name, case-sensitive as they are (RFC 9110 says so):
# ``get`` is not ``GET`` and is recorded as _OTHER, with its original spelling kept.
KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
# Patterns (fnmatch, case-insensitive, matched against the percent-decoded key) of query
# keys whose values are replaced before being recorded anywhere. Substrings catch the
# spellings an exact list misses (auth_token, private_token, sessionid, token[]).
DEFAULT_REDACT_QUERY: Final = (
    "*token*", "*secret*", "*password*", "*passwd*", "*pwd*", "*key*", "*auth*",
    "*session*", "*signature*", "*credential*", "*jwt*", "*bearer*", "*cookie*",
    "sig", "code",
)  # fmt: skip
REDACTED: Final = "REDACTED"
_SEPARATORS: Final = re.compile(r"([&;])")
_DECODE_ROUNDS: Final = 3  # %2574oken is %74oken once decoded, token twice


def normalise_method(method: str) -> tuple[str, str | None]:
    """``(label, original)``: the known method, or ``_OTHER`` and the original token."""
    if method in KNOWN_METHODS:
        return method, None
    return names.METHOD_OTHER, method


def status_label(status: int) -> str:
    """The status code as a label: any value outside 100-599 shares one label."""
    return str(status) if 100 <= status <= 599 else names.STATUS_OTHER


class Redactor:
    """Replaces the values of query keys matching any of ``patterns`` (compiled once)."""

    __slots__ = ("_match", "patterns")

    def __init__(self, patterns: Iterable[str] = DEFAULT_REDACT_QUERY) -> None:
        if isinstance(patterns, str):
            raise ConfigurationError(f"redact_query_keys must be a list of patterns: {patterns!r}")
        checked = []
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise ConfigurationError(f"invalid redact_query_keys pattern {pattern!r}")
            checked.append(pattern.lower())
        self.patterns = tuple(checked)
        joined = "|".join(translate(p) for p in self.patterns)
        self._match = re.compile(joined, re.DOTALL).match if joined else None

    def sensitive(self, key: str) -> bool:
        """Whether the (raw, possibly percent-encoded) ``key`` names a secret."""
        match = self._match
        if match is None:
            return False
        for _ in range(_DECODE_ROUNDS):
            if match(key.lower()):
                return True
            decoded = unquote_plus(key)
            if decoded == key:
                return False
            key = decoded
        return match(key.lower()) is not None

    def __call__(self, query: str) -> str:
        """``query`` with the value of every sensitive key replaced by ``REDACTED``.

        Pairs are separated by ``&`` or ``;``; everything else is kept as it was sent, so
        the recorded query reads like the one on the wire.
        """
        if not query or self._match is None:
            return query
        parts = _SEPARATORS.split(query)
        redacted = False
        for i in range(0, len(parts), 2):  # odd indices are the separators themselves
            key, eq, _ = parts[i].partition("=")
            if eq and self.sensitive(key):
                parts[i] = f"{key}={REDACTED}"
                redacted = True
        return "".join(parts) if redacted else query


_default = Redactor()


def redact_query(query: str, redactor: Redactor | None = None) -> str:
    """``query`` redacted by ``redactor`` (the default patterns when ``None``)."""
    return (redactor or _default)(query)
