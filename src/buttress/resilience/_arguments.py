"""Argument checks shared by the breaker, bulkhead and rate limiter.

Each check returns the normalised value or raises :class:`ConfigurationError` naming the
argument and the bad value, so a mistake is reported where the strategy is built.
"""

from __future__ import annotations

import math
from datetime import timedelta

from .._errors import ConfigurationError

__all__ = ["check_fraction", "check_int", "check_name", "check_seconds"]


def check_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty str, got {value!r}")
    return value


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` (a number of seconds or a ``timedelta``) as finite float seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{name} must be seconds (float) or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be finite and {bound}, got {value!r}")
    return seconds


def check_int(name: str, value: object, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_fraction(name: str, value: object) -> float:
    """A rate threshold in (0, 1]."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ConfigurationError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)
