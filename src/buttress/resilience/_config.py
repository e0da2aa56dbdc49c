"""Test mode: make every retry in the process fast and short, for the user's own tests."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["CONFIG", "TestMode", "is_testing", "set_testing"]


class _Config:
    """Process-wide switches read on each decision (one attribute read, no lock)."""

    __slots__ = ("attempts", "lock", "testing")

    def __init__(self) -> None:
        self.testing = False
        self.attempts = 1
        self.lock = threading.Lock()


CONFIG = _Config()


class TestMode:
    """What :func:`set_testing` returns: use it as a context manager to restore the old mode."""

    __slots__ = ("_previous",)
    __test__ = False  # not a pytest test class

    def __init__(self, previous: tuple[bool, int]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with CONFIG.lock:
            CONFIG.testing, CONFIG.attempts = self._previous


def set_testing(testing: bool = True, *, attempts: int = 1) -> TestMode:
    """Switch test mode on (or off) for the whole process.

    In test mode retries never sleep and make at most ``attempts`` attempts, so tests of
    code that uses buttress run fast. It works as a plain call or as a context manager
    that restores the previous mode on exit::

        with buttress.testing.set_testing(attempts=2):
            ...
    """
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigurationError(f"attempts must be an int >= 1, got {attempts!r}")
    with CONFIG.lock:
        previous = (CONFIG.testing, CONFIG.attempts)
        CONFIG.testing, CONFIG.attempts = bool(testing), attempts
    return TestMode(previous)


def is_testing() -> bool:
    """Whether test mode is on."""
    return CONFIG.testing
