"""Argument checks and naming shared by every strategy.

Bad values raise :class:`ConfigurationError` naming the value; legal but surprising ones
warn at the caller's line. Strategies left unnamed take a bounded default name: the
decorated function's qualified name, or the policy's name when composed in a Policy.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ._errors import ButtressWarning, ConfigurationError

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "ExceptionFilter",
    "Named",
    "callable_name",
    "check_fraction",
    "check_int",
    "check_name",
    "check_optional_name",
    "check_seconds",
    "exact_ratio",
    "exception_matcher",
    "in_event_loop",
    "seconds",
    "to_seconds",
    "warn",
]

ExceptionFilter: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)

R = TypeVar("R")


def to_seconds(value: object, what: str, *, allow_none: bool = False) -> float | None:
    """``value`` (seconds as a number, or a timedelta) as a finite float >= 0."""
    if value is None and allow_none:
        return None
    from datetime import timedelta  # here, so that importing buttress stays cheap

    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        raise ConfigurationError(f"{what} must be seconds (a number or a timedelta), got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{what} must be a finite duration >= 0, got {value!r}")
    return seconds


def seconds(value: object, what: str) -> float:
    """:func:`to_seconds` for a value that may not be ``None``."""
    result = to_seconds(value, what)
    assert result is not None  # to_seconds returns None only when allowed
    return result


def warn(message: str, *, stacklevel: int) -> None:
    """Warn about a legal but surprising value; ``stacklevel`` counts from the caller of this."""
    warnings.warn(message, ButtressWarning, stacklevel=stacklevel + 1)


def exact_ratio(value: float) -> tuple[int, int]:
    """``value`` as a fraction of small integers: ``0.55`` is ``(11, 20)``.

    Thresholds are compared in integers with it, because ``0.55 * 100`` is
    ``55.00000000000001``: the decimal the user wrote is what counts (``str`` gives the
    shortest repr), within a denominator of a million.
    """
    from fractions import Fraction  # here: only built at configuration time

    exact = Fraction(str(value)).limit_denominator(1_000_000)
    return exact.numerator, exact.denominator


def in_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop now (a sync wait would stall it)."""
    import sys

    asyncio = sys.modules.get("asyncio")  # never loaded: no loop can be running
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def exception_matcher(on: object, what: str = "on") -> Callable[[BaseException], bool]:
    """A predicate from an exception type, a tuple of them, or a predicate."""
    if isinstance(on, type) and issubclass(on, BaseException):
        types: tuple[type[BaseException], ...] = (on,)
    elif isinstance(on, tuple):
        bad = [t for t in on if not (isinstance(t, type) and issubclass(t, BaseException))]
        if bad:
            raise ConfigurationError(f"{what} must hold exception types, got {bad[0]!r}")
        types = on
    elif callable(on):
        predicate: Callable[[BaseException], bool] = on
        return predicate
    else:
        raise ConfigurationError(
            f"{what} must be an exception type, a tuple of them or a predicate, got {on!r}"
        )
    if not types:
        return _never
    for kind in types:
        # Only Exception subclasses are ever caught (cancellation, Ctrl-C and exit pass
        # through untouched), so a type that can match none of them is a mistake.
        if not issubclass(kind, Exception) and not issubclass(Exception, kind):
            raise ConfigurationError(
                f"{what}={kind.__name__} can never match: only Exception subclasses are "
                "caught; cancellation, KeyboardInterrupt and SystemExit always pass through"
            )

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, types)

    return matches


def _never(exc: BaseException) -> bool:
    return False


def callable_name(fn: object) -> str:
    """``module.qualname`` of a function (of the wrapped one for partials), bounded by code."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{module}.{qualname}"


def check_name(name: object, what: str = "name") -> str:
    """A required name: a non-empty string."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{what} must be a non-empty string, got {name!r}")
    return name


def check_optional_name(name: object, what: str = "name") -> str | None:
    """A name that may be left out (``None``)."""
    return None if name is None else check_name(name, what)


def check_seconds(what: str, value: object, *, allow_zero: bool = False) -> float:
    """A required duration in seconds; zero only when ``allow_zero``."""
    result = seconds(value, what)
    if result == 0 and not allow_zero:
        raise ConfigurationError(f"{what} must be finite and > 0, got {value!r}")
    return result


def check_int(what: str, value: object, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def check_fraction(what: str, value: object) -> float:
    """A rate threshold in (0, 1]."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ConfigurationError(f"{what} must be a number in (0, 1], got {value!r}")
    return float(value)


class Named:
    """Mixin for strategies whose name is optional.

    ``_name`` is what events carry; ``_explicit`` says whether the user chose it. An
    unnamed strategy decorating a function reports that function's qualified name;
    composed in a named Policy, it reports the policy's name. Renamed copies share state
    (a retry's budget, for one), since they are the same policy.
    """

    __slots__ = ()
    _name: str
    _explicit: bool

    @property
    def name(self) -> str:
        """The name events and metrics carry."""
        return self._name

    def _with_default_name(self, name: str) -> Self:
        """This strategy if it is named, else a copy named ``name`` that shares its state."""
        if self._explicit:
            return self
        clone = self._clone()
        object.__setattr__(clone, "_name", name)
        object.__setattr__(clone, "_explicit", True)
        clone._renamed()
        return clone

    def _clone(self) -> Self:
        cls = type(self)
        clone = cls.__new__(cls)
        for klass in cls.__mro__:
            for slot in getattr(klass, "__slots__", ()):
                if hasattr(self, slot):
                    object.__setattr__(clone, slot, getattr(self, slot))
        return clone

    def _renamed(self) -> None:
        """Rebuild whatever depends on the name (prebuilt events)."""

    def _decorate_named(self, fn: Any) -> Any:
        """The strategy that decorates ``fn``: itself, or a copy named after ``fn``."""
        if isinstance(fn, staticmethod | classmethod):
            fn = fn.__func__
        if self._explicit or not callable(fn):
            return self
        return self._with_default_name(callable_name(fn))
