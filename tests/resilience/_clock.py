"""A clock the tests move by hand: no test sleeps to wait for a breaker or a bucket."""

from __future__ import annotations

import threading
from typing import Protocol


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


def state(obj: _HasState) -> str:
    """The state as a plain str, so that type checkers do not narrow it between steps."""
    return obj.state
