"""Pure wait computation: exponential backoff with jitter, and Retry-After parsing.

No clock and no sleeping here: randomness is injected, so the bounds of every wait can be
checked by property tests. :func:`parse_retry_after` is shared with the httpx transport.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["Backoff", "Jitter", "parse_retry_after"]

Jitter: TypeAlias = Literal["full", "equal", "decorrelated", "none"]
JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits that grow from ``initial`` by ``base`` per attempt, capped at ``maximum``.

    ``jitter`` spreads the waits of many clients so their retries do not arrive in waves:

    - ``"full"``: uniform in ``[0, ceiling]`` (the least load on the dependency);
    - ``"equal"``: uniform in ``[ceiling / 2, ceiling]`` (never very short);
    - ``"decorrelated"``: uniform in ``[initial, 3 * previous wait]``, capped;
    - ``"none"``: exactly the ceiling,

    where ``ceiling = min(maximum, initial * base ** (attempt - 1))``.
    """

    initial: float
    maximum: float
    base: float
    jitter: Jitter

    def ceiling(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt ``attempt`` (1-based)."""
        try:
            grown = self.initial * self.base ** (attempt - 1)
        except OverflowError:  # a huge attempt number: the cap applies long before
            return self.maximum
        return min(self.maximum, grown)

    def wait(self, attempt: int, previous: float, random: Callable[[], float]) -> float:
        """The wait after failed attempt ``attempt``; ``previous`` is the last wait (or 0).

        ``random`` returns floats in ``[0, 1)``, as :func:`random.random` does.
        """
        jitter = self.jitter
        if jitter == "decorrelated":
            low = min(self.initial, self.maximum)
            high = min(self.maximum, 3.0 * max(previous, self.initial))
            return low + (high - low) * random()
        ceiling = self.ceiling(attempt)
        if jitter == "full":
            return ceiling * random()
        if jitter == "equal":
            half = ceiling / 2.0
            return half + half * random()
        return ceiling


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
