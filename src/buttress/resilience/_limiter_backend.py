"""Where a rate limiter's bucket lives: the arithmetic, the protocol, the local backend.

:class:`RateLimiter` talks to a :class:`LimiterBackend`; :class:`LocalLimiter` keeps the
bucket in this process, and the Redis store builds another on top of it (its fallback
when Redis is away). The rate limiter and the Redis store both depend on this module,
never on each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._events import Registry

__all__ = ["LimiterBackend", "LimiterStore", "LocalLimiter", "TokenBucket"]


class TokenBucket:
    """The bucket's arithmetic: pure, with the time passed in. Callers serialise access."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate  # tokens per second
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float, max_wait: float) -> float:
        """Take one token: 0 when one was there, the wait (> 0) for a reserved one, or
        minus the time until the next token when even waiting ``max_wait`` would not do."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        wait = (1 - self.tokens) / self.rate
        if wait <= max_wait:
            self.tokens -= 1
            return wait
        # Without waiting, the next token is due when the bucket is back to one.
        return -wait

    def give_back(self, now: float) -> None:
        """Return a reserved token its waiter never used (it was cancelled or interrupted).

        Waiters queued behind keep their own reservations; the next caller gets this one.
        """
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + 1)


class LimiterBackend(Protocol):
    """One bucket: take a token (or reserve one), give back a reservation not used."""

    local: bool

    def take(self, max_wait: float) -> float: ...
    async def take_async(self, max_wait: float) -> float: ...
    def give_back(self) -> None: ...
    async def give_back_async(self) -> None: ...


class LimiterStore(Protocol):
    """What ``RateLimiter(store=...)`` needs of a store (``RedisStore`` is one)."""

    def limiter_backend(
        self,
        name: str,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        registry: Registry,
    ) -> LimiterBackend: ...


class LocalLimiter:
    """A token bucket in this process, behind a lock held for microseconds."""

    __slots__ = ("_clock", "_lock", "bucket", "local")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.bucket = TokenBucket(rate, burst, clock())
        self.local = True

    def take(self, max_wait: float) -> float:
        with self._lock:
            return self.bucket.take(self._clock(), max_wait)

    async def take_async(self, max_wait: float) -> float:
        return self.take(max_wait)

    def give_back(self) -> None:
        with self._lock:
            self.bucket.give_back(self._clock())

    async def give_back_async(self) -> None:
        self.give_back()
