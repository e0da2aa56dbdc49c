"""``RateLimiter``: a token bucket, in this process or shared through Redis.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per ``per``
seconds. A call takes one token. When none is left, the caller either gets
:class:`RateLimited` (with the time until the next token) or, if that time is within
``max_wait``, reserves the next token (the bucket goes below zero) and sleeps until it
is due: reservations queue in order, so waiting callers can never exceed the rate either.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._args import check_name, check_seconds, in_event_loop, warn
from .._errors import ConfigurationError, RateLimited
from .._events import RateLimitRejected, RateLimitWaited, Registry, default_registry
from ._limiter_backend import LimiterBackend, LimiterStore, LocalLimiter, TokenBucket
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

__all__ = ["RateLimiter", "TokenBucket"]

R = TypeVar("R")


class RateLimiter(Strategy):
    """Let at most ``rate`` calls per ``per`` seconds through, with bursts up to ``burst``.

    ``max_wait`` (seconds, 0 by default) is how long a caller may wait for a token
    instead of getting :class:`RateLimited`. ``store=RedisStore(...)`` shares one
    bucket between processes.
    """

    __slots__ = ("_backend", "_registry", "_sleep", "burst", "max_wait", "name", "rate")

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        per: float | timedelta = 1.0,
        burst: int | None = None,
        max_wait: float | timedelta = 0.0,
        store: LimiterStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        events: Registry | None = None,
    ) -> None:
        self.name = check_name(name)
        if sleep is not None and not callable(sleep):
            raise ConfigurationError(f"sleep must be callable, got {sleep!r}")
        # Waits for a token go through ``sleep`` when given (a fake clock's, in tests; its
        # result is awaited in async calls when awaitable), else time.sleep/asyncio.sleep.
        self._sleep = sleep
        if (
            not isinstance(rate, int | float)
            or isinstance(rate, bool)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ConfigurationError(f"rate must be a finite number > 0, got {rate!r}")
        self.rate = rate / check_seconds("per", per)  # tokens per second
        if burst is None:
            burst = max(1, math.ceil(rate))  # one period's worth
        elif not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            raise ConfigurationError(f"burst must be an int >= 1, got {burst!r}")
        self.burst = burst
        self.max_wait = check_seconds("max_wait", max_wait, allow_zero=True)
        self._registry = events if events is not None else default_registry
        self._backend: LimiterBackend
        if store is None:
            self._backend = LocalLimiter(self.rate, float(burst), clock)
        else:
            self._backend = store.limiter_backend(
                self.name, self.rate, float(burst), clock, self._registry
            )

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, rate={self.rate:g}/s, burst={self.burst})"

    def _refused(self, retry_after: float) -> RateLimited:
        if self._registry.active:
            self._registry.emit(RateLimitRejected(self.name, retry_after))
        return RateLimited(
            f"rate limiter {self.name!r} has no token; the next one comes in {retry_after:.3f}s",
            name=self.name,
            retry_after=retry_after,
        )

    def acquire(self) -> None:
        """Take a token for this thread, sleeping for it if ``max_wait`` allows.

        Inside a running event loop a sync caller never sleeps (that would stall every
        task on the loop): it is refused at once, with a warning to use ``async with``.
        """
        max_wait = self.max_wait
        in_loop = max_wait > 0 and self._sleep is None and in_event_loop()
        wait = self._backend.take(0.0 if in_loop else max_wait)
        if wait < 0:
            if in_loop:
                warn(
                    f"rate limiter {self.name!r} used synchronously inside a running event "
                    "loop: it refuses instead of sleeping there; use 'async with' or "
                    "acquire_async()",
                    stacklevel=3,
                )
            raise self._refused(-wait)
        if wait > 0:
            if self._registry.active:
                self._registry.emit(RateLimitWaited(self.name, wait))
            try:
                (self._sleep or time.sleep)(wait)
            except BaseException:
                # Interrupted while waiting (Ctrl-C, SystemExit, gevent.Timeout): the
                # reserved token was never used, so the next caller may have it.
                self._backend.give_back()
                raise

    async def acquire_async(self) -> None:
        """Take a token for this task, sleeping for it if ``max_wait`` allows."""
        backend = self._backend
        wait = (
            backend.take(self.max_wait)
            if backend.local
            else await backend.take_async(self.max_wait)
        )
        if wait != 0.0:
            await self._refuse_or_wait(wait)

    async def _refuse_or_wait(self, wait: float) -> None:
        if wait < 0:
            raise self._refused(-wait)
        if self._registry.active:
            self._registry.emit(RateLimitWaited(self.name, wait))
        try:
            if self._sleep is None:
                await asyncio.sleep(wait)
            else:
                slept = self._sleep(wait)
                if inspect.isawaitable(slept):
                    await slept
        except BaseException:
            # Cancelled while waiting: give the reserved token back. The local bucket is
            # refunded at once; a shared one through the store, shielded from the
            # cancellation that is under way.
            backend = self._backend
            if backend.local:
                backend.give_back()
            else:
                await asyncio.shield(backend.give_back_async())
            raise

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        self.acquire()
        return fn(*args, **kwargs)

    async def run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        backend = self._backend
        # Inline rather than ``await self.acquire_async()``: one coroutine less per call.
        wait = (
            backend.take(self.max_wait)
            if backend.local
            else await backend.take_async(self.max_wait)
        )
        if wait != 0.0:
            await self._refuse_or_wait(wait)
        return await fn(*args, **kwargs)

    # A token is spent on entry and never given back: nothing to keep per use.
    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
