"""Helpers for testing code that uses buttress: test mode and event capture.

>>> import buttress.testing
>>> with buttress.testing.set_testing(attempts=2):
...     buttress.testing.is_testing()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._events import default_registry
from .resilience._config import is_testing, set_testing

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._events import Event

__all__ = ["capture_events", "is_testing", "set_testing"]


def capture_events() -> AbstractContextManager[list[Event]]:
    """Collect every event the default registry emits inside the ``with`` block.

    >>> with capture_events() as events:
    ...     pass
    >>> events
    []
    """
    return default_registry.capture()
