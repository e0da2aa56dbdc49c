"""The deadline as an HTTP header: ``X-Buttress-Deadline: <seconds left, as a decimal>``.

The value is relative (seconds remaining when the request left), never a wall-clock
instant, so the clocks of the two hosts need not agree; the network time of the request
itself is spent from the budget on neither side, which errs on the generous side by one
transit. The httpx transports write it with :func:`format_deadline`; the middleware reads
it with :func:`parse_deadline` and binds the deadline for the request (see docs/httpx.md).
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["MAX_DEADLINE", "format_deadline", "parse_deadline"]

MAX_DEADLINE: Final = 86_400.0
"""The longest budget a header may carry (one day); a larger value is clipped to it."""

# Plain decimal: no sign, exponent, inf or nan, and bounded in length, so a hostile
# client cannot make parsing expensive or smuggle in an unbounded budget.
_DECIMAL: Final = re.compile(rb"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def format_deadline(remaining: float) -> str:
    """The header value for ``remaining`` seconds: milliseconds precision, never negative."""
    if not math.isfinite(remaining) or remaining <= 0:
        return "0.000"
    return f"{min(remaining, MAX_DEADLINE):.3f}"


def parse_deadline(value: str | bytes | None) -> float | None:
    """Seconds left from a header value, or ``None`` when it is absent or malformed.

    ``0`` (or ``0.000``) is a valid value meaning "no time left": the receiver should
    refuse the work rather than start it. Values above :data:`MAX_DEADLINE` are clipped.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isascii():
            return None
        value = value.encode("ascii")
    value = value.strip()
    if _DECIMAL.fullmatch(value) is None:
        return None
    return min(float(value), MAX_DEADLINE)
