"""Reading a breaker's state in tests (the fake clock is public: buttress.testing.FakeClock)."""

from __future__ import annotations

from typing import Protocol


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


def state(obj: _HasState) -> str:
    """The state as a plain str, so that type checkers do not narrow it between steps."""
    return obj.state
