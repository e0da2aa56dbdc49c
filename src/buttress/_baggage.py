"""W3C baggage within the specification's limits, in both directions.

The W3C Baggage specification asks every platform to carry at least 64 list-members and
8,192 bytes; those are our bounds too. A member whose key is not a token or whose value
holds control characters is dropped, the rest are kept in order until a bound is reached,
so a client (or a bug upstream) can neither grow our memory nor plant junk downstream.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from opentelemetry import baggage
from opentelemetry.context import Context

__all__ = ["MAX_BYTES", "MAX_MEMBERS", "bounded", "without"]

MAX_MEMBERS: Final = 64
MAX_BYTES: Final = 8192
_KEY: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def bounded(context: Context) -> Context:
    """``context`` with its baggage cut to the limits (the same object when within them)."""
    entries = baggage.get_all(context)
    if not entries:
        return context
    kept: list[tuple[str, str]] = []
    size = 0
    changed = False
    for key, value in entries.items():
        text = value if isinstance(value, str) else str(value)
        if not _KEY.fullmatch(key) or _CONTROL.search(text):
            changed = True
            continue
        # The size it takes on the wire: key=value, percent-encoded, plus the comma.
        member = len(key) + 1 + len(quote(text, safe="")) + (1 if kept else 0)
        if len(kept) >= MAX_MEMBERS or size + member > MAX_BYTES:
            changed = True
            break
        kept.append((key, text))
        size += member
    if not changed:
        return context
    trimmed = baggage.clear(context)
    for key, text in kept:
        trimmed = baggage.set_baggage(key, text, trimmed)
    return trimmed


def without(context: Context) -> Context:
    """``context`` with no baggage at all."""
    return baggage.clear(context) if baggage.get_all(context) else context
