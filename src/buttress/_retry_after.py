"""The ``Retry-After`` header's value as seconds to wait (RFC 9110 section 10.2.3).

Read by ``retry(retry_after=...)`` for values a server gave and by the httpx transports
for responses; it lives beside the other value parsers shared by both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["parse_retry_after"]


def parse_retry_after(
    value: str | bytes | float | timedelta | None, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when it says nothing usable.

    Accepts delay-seconds (``"120"``), an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``,
    measured against ``now``, wall-clock seconds since the epoch), a number or a
    timedelta. A date in the past means no wait (0.0); garbage and negatives give
    ``None``, so the caller falls back to its own backoff.
    """
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str | bytes):
        total_seconds = getattr(value, "total_seconds", None)  # a timedelta, or garbage
        if total_seconds is None:
            return None
        value = float(total_seconds())
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip()
    if text.isdigit():  # RFC 9110: delay-seconds is 1*DIGIT
        return float(int(text))
    # email.utils is only needed for the date form; importing it here keeps import cheap.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a date without a zone is read as such
        return None
    return max(0.0, when.timestamp() - now())
