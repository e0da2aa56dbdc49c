"""Where a breaker's state lives: the backend protocol and the in-process backend.

:class:`CircuitBreaker` talks to a :class:`BreakerBackend`; :class:`LocalBreaker` is the
one in this process, and the Redis store builds another on top of it (its fallback when
Redis is away). Imports flow one way: the breaker and the Redis store both depend on
this module, never on each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from ._breaker_core import BreakerConfig, BreakerCore, Outcome, Reason, State, Transition

if TYPE_CHECKING:
    from .._events import Registry

__all__ = ["BreakerBackend", "BreakerStore", "LocalBreaker"]


class BreakerBackend(Protocol):
    """One breaker's state: admit before a call, record after it, steer by hand."""

    local: bool

    def admit(self) -> int: ...
    def record(self, ticket: int, outcome: Outcome, duration: float) -> bool: ...
    async def admit_async(self) -> int: ...
    async def record_async(self, ticket: int, outcome: Outcome, duration: float) -> bool: ...
    def rejection(self) -> tuple[State, float | None]: ...
    def current_state(self) -> State: ...
    def retry_after(self) -> float | None: ...
    def force(self, state: Literal["forced_open", "forced_closed"]) -> None: ...
    def reset(self) -> None: ...


class BreakerStore(Protocol):
    """What ``CircuitBreaker(store=...)`` needs of a store (``RedisStore`` is one)."""

    def breaker_backend(
        self,
        name: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        announce: Callable[[list[Transition]], None],
        registry: Registry,
    ) -> BreakerBackend: ...


class LocalBreaker:
    """A breaker state held in this process: the core behind a lock held for microseconds."""

    __slots__ = ("_announce", "_clock", "_lock", "core", "local")

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float],
        announce: Callable[[list[Transition]], None],
    ) -> None:
        self.core = BreakerCore(config)
        self._clock = clock
        self._announce = announce
        self._lock = threading.Lock()
        self.local = True

    def _drain(self) -> list[Transition] | None:
        moved = self.core.transitions
        if not moved:
            return None
        self.core.transitions = []
        return moved

    def admit(self) -> int:
        ticket = self.core.closed_ticket
        if ticket >= 0:
            # Closed: one attribute read, no lock. Should the breaker open right after,
            # the ticket is stale and its outcome is not counted against the new state.
            return ticket
        with self._lock:
            ticket = self.core.admit(self._clock())
            moved = self._drain() if self.core.transitions else None
        if moved:
            self._announce(moved)
        return ticket

    def record(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        with self._lock:
            counted = self.core.record(self._clock(), ticket, outcome, duration)
            moved = self._drain() if self.core.transitions else None
        if moved:
            self._announce(moved)
        return counted

    async def admit_async(self) -> int:
        return self.admit()

    async def record_async(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        return self.record(ticket, outcome, duration)

    def rejection(self) -> tuple[State, float | None]:
        with self._lock:
            return self.core.state, self.core.retry_after(self._clock())

    def current_state(self) -> State:
        return self.core.state

    def retry_after(self) -> float | None:
        with self._lock:
            return self.core.retry_after(self._clock())

    def _steer(self, action: Callable[[], None], announce: bool) -> None:
        with self._lock:
            action()
            moved = self._drain()
        if moved and announce:
            self._announce(moved)

    def trip(self, reason: Reason) -> None:
        self._steer(lambda: self.core.trip(self._clock(), reason), True)

    def force(
        self, state: Literal["forced_open", "forced_closed"], *, announce: bool = True
    ) -> None:
        """Force ``state``; ``announce=False`` when a shared store announced it already."""
        self._steer(lambda: self.core.force(state), announce)

    def reset(self, *, announce: bool = True) -> None:
        self._steer(self.core.reset, announce)
