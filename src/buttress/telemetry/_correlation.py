"""Correlation ids: one id per request, held in a contextvar that is always reset.

An incoming id is kept only when it is short and made of safe characters; anything else
(CR/LF, NUL, spaces, quotes, non-ASCII, too long) is replaced by a fresh id, never echoed.
"""

from __future__ import annotations

import contextlib
import os
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_LENGTH",
    "accept_correlation_id",
    "bound_correlation_id",
    "get_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
]

MAX_LENGTH = 128
"""The longest incoming id kept (a UUID is 36 characters, a W3C trace id 32)."""

# Letters, digits and a few separators common in generated ids (UUIDs, base64url, ULIDs,
# "service:1234"). Nothing that could split a header, a log line or a metric label.
_SAFE = re.compile(rb"[A-Za-z0-9._:+/=-]+")

correlation_id: ContextVar[str | None] = ContextVar("buttress_correlation_id", default=None)


def get_correlation_id() -> str | None:
    """The correlation id of the current request (or task), or ``None`` outside one."""
    return correlation_id.get()


@contextlib.contextmanager
def bound_correlation_id(value: str) -> Iterator[str]:
    """Bind ``value`` as the correlation id inside the ``with`` block; always reset after.

    ``value`` must be a valid id (see :func:`is_valid_correlation_id`): ids bound here are
    echoed in headers and logs, so an unsafe one is refused with ``ConfigurationError``.
    """
    if not is_valid_correlation_id(value):
        raise ConfigurationError(f"unsafe correlation id {value!r}: use letters, digits, ._:+/=-")
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)


def new_correlation_id() -> str:
    """A fresh random id: 32 lowercase hex digits (128 bits, like a W3C trace id)."""
    return os.urandom(16).hex()


def is_valid_correlation_id(value: str | bytes, *, max_length: int = MAX_LENGTH) -> bool:
    """Whether ``value`` is safe to keep and echo: 1 to ``max_length`` safe characters."""
    if isinstance(value, str):
        if not value.isascii():
            return False
        value = value.encode("ascii")
    return 0 < len(value) <= max_length and _SAFE.fullmatch(value) is not None


def accept_correlation_id(raw: str | bytes | None, *, max_length: int = MAX_LENGTH) -> str:
    """The incoming id when it is valid, otherwise a fresh one."""
    if raw is not None and is_valid_correlation_id(raw, max_length=max_length):
        return raw if isinstance(raw, str) else raw.decode("ascii")
    return new_correlation_id()
