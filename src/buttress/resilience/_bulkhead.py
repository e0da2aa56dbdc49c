"""``Bulkhead``: at most ``max_concurrent`` calls at once, a bounded queue for the rest.

One bulkhead serves threads and asyncio tasks alike: the slot count lives behind one
``threading.Lock`` held for a few instructions. Waiters queue in arrival order; a
released slot is handed to the first waiter directly (it never becomes free in between),
so a newcomer cannot overtake the queue and the count can never exceed the limit. A
thread waits on its own ``threading.Event``; a task waits on a future of its own loop,
completed with ``call_soon_threadsafe`` so a thread can hand a slot to a task.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._args import check_int, check_name, check_seconds, in_event_loop, warn
from .._errors import BulkheadFull, ConfigurationError
from .._events import BulkheadRejected, BulkheadUsage, Registry, default_registry
from ._shell import Strategy

if TYPE_CHECKING:
    from datetime import timedelta
    from types import TracebackType

__all__ = ["Bulkhead"]

R = TypeVar("R")


class _Waiter:
    """One queued caller. ``granted`` is set under the bulkhead lock when it gets a slot."""

    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[None] | None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.granted = False

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.future is not None:
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Bulkhead(Strategy):
    """Limit how many calls run at once; queue at most ``max_waiting`` more.

    A caller that finds every slot taken waits in line (up to ``wait_timeout``
    seconds) if fewer than ``max_waiting`` already wait, and gets :class:`BulkheadFull`
    otherwise. ``max_waiting=0`` (the default) rejects at once. :attr:`in_use` and
    :attr:`waiting` are readable at any time.
    """

    __slots__ = (
        "_lock",
        "_queue",
        "_registry",
        "in_use",
        "max_concurrent",
        "max_waiting",
        "name",
        "wait_timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int = 10,
        max_waiting: int = 0,
        wait_timeout: float | timedelta = 1.0,
        events: Registry | None = None,
    ) -> None:
        self.name = check_name(name)
        self.max_concurrent = check_int("max_concurrent", max_concurrent, minimum=1)
        self.max_waiting = check_int("max_waiting", max_waiting, minimum=0)
        self.wait_timeout = check_seconds("wait_timeout", wait_timeout, allow_zero=True)
        if self.max_waiting > 0 and self.wait_timeout == 0:
            raise ConfigurationError(
                f"max_waiting={self.max_waiting} with wait_timeout=0: a caller may queue but "
                "never wait; set wait_timeout > 0, or max_waiting=0 to reject at once"
            )
        self._registry = events if events is not None else default_registry
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self.in_use = 0

    @property
    def waiting(self) -> int:
        """How many callers wait for a slot right now."""
        return len(self._queue)

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, in_use={self.in_use}/{self.max_concurrent}, "
            f"waiting={self.waiting})"
        )

    # -- slots --------------------------------------------------------------------------

    def _usage(self) -> None:
        self._registry.emit(
            BulkheadUsage(self.name, self.in_use, len(self._queue), self.max_concurrent)
        )

    def _full(self, reason: str) -> BulkheadFull:
        if self._registry.active:
            self._registry.emit(
                BulkheadRejected(self.name, "full" if reason == "full" else "wait_timeout")
            )
        what = "no free slot and no waiting place" if reason == "full" else "waited too long"
        return BulkheadFull(
            f"bulkhead {self.name!r} is full ({self.max_concurrent} in use): {what}",
            name=self.name,
        )

    def _try_enter(self, waiter: _Waiter | None) -> bool | None:
        """Take a free slot (True), or queue ``waiter`` (None), or refuse (False).

        Called under the lock. With no waiter to queue, a full bulkhead refuses.
        """
        if self.in_use < self.max_concurrent and not self._queue:
            self.in_use += 1
            return True
        if waiter is None or len(self._queue) >= self.max_waiting:
            return False
        self._queue.append(waiter)
        return None

    def _release(self) -> None:
        with self._lock:
            # Hand the slot straight to the first waiter: ``in_use`` stays the same.
            if self._queue:
                waiter = self._queue.popleft()
                waiter.granted = True
                waiter.wake()
            elif self.in_use > 0:
                self.in_use -= 1
            else:
                raise RuntimeError(f"bulkhead {self.name!r} released more slots than it gave")
        if self._registry.active:
            self._usage()

    def _abandon(self, waiter: _Waiter) -> bool:
        """The waiter gives up; ``True`` if it had been granted a slot meanwhile."""
        with self._lock:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
            return False

    def acquire(self) -> None:
        """Take a slot for the calling thread (waiting if allowed); pair with :meth:`release`.

        Inside a running event loop a sync caller never waits (that would stall every
        task on the loop for up to ``wait_timeout``): it is refused at once, with a
        warning to use ``async with``.
        """
        with self._lock:
            entered = self._try_enter(None)
        waiter = None
        if entered is False and self.max_waiting > 0:
            if in_event_loop():
                warn(
                    f"bulkhead {self.name!r} used synchronously inside a running event loop: "
                    "it refuses instead of waiting there; use 'async with' or acquire_async()",
                    stacklevel=3,
                )
                raise self._full("full")
            # Only a caller that must wait pays for an Event.
            waiter = _Waiter(threading.Event(), None, None)
            with self._lock:
                entered = self._try_enter(waiter)
        if entered is False:
            raise self._full("full")
        if entered is None and waiter is not None and waiter.event is not None:
            if self._registry.active:
                self._usage()
            try:
                woken = waiter.event.wait(self.wait_timeout)
            except BaseException:
                # Interrupted while waiting (Ctrl-C, a SIGTERM handler raising SystemExit,
                # gevent.Timeout): leave the line, or pass on a slot granted meanwhile.
                if self._abandon(waiter):
                    self._release()
                raise
            if not woken and not self._abandon(waiter):
                raise self._full("wait_timeout")
        if self._registry.active:
            self._usage()

    async def acquire_async(self) -> None:
        """Take a slot for the calling task (waiting if allowed); pair with :meth:`release`."""
        with self._lock:
            entered = self._try_enter(None)
        waiter = None
        if entered is False and self.max_waiting > 0:
            loop = asyncio.get_running_loop()
            waiter = _Waiter(None, loop, loop.create_future())
            with self._lock:
                entered = self._try_enter(waiter)
        if entered is False:
            raise self._full("full")
        if entered is None and waiter is not None and waiter.future is not None:
            if self._registry.active:
                self._usage()
            try:
                async with asyncio.timeout(self.wait_timeout):
                    await waiter.future
            except TimeoutError:
                if not self._abandon(waiter):
                    raise self._full("wait_timeout") from None
            except BaseException:
                # Cancelled while waiting: leave the line, or pass on a slot just granted.
                if self._abandon(waiter):
                    self._release()
                raise
        if self._registry.active:
            self._usage()

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire` or :meth:`acquire_async`."""
        self._release()

    # -- calls ------------------------------------------------------------------------

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        # The uncontended case inline: no extra coroutine, no waiter.
        with self._lock:
            entered = self.in_use < self.max_concurrent and not self._queue
            if entered:
                self.in_use += 1
        if not entered:
            await self.acquire_async()
        elif self._registry.active:
            self._usage()
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    # A slot carries no per-use state, so the context manager needs nothing per use.
    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    async def __aenter__(self) -> Bulkhead:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()
