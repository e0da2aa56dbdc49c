"""Attempt loops: retry a few lines in place, without extracting a function.

::

    for attempt in retrying(policy):
        with attempt:
            do_the_work()

    async for attempt in retrying(policy):
        with attempt:
            await do_the_work()

The loop runs on the retry's own core: the same budget (one deposit per loop, one
withdrawal per retry), the same deadline (the retry's and the context's), the same
decisions and events, the same ``wait`` and ``retry_after`` hooks. ``Attempt.__exit__``
decides, without I/O; the iterator's ``__next__`` (or ``__anext__``) takes the wait, so
the sync and async loops differ only in how they sleep. When the retry stops, the last
exception leaves the ``with`` block as it came, unchanged.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

from .._deadline import _DEADLINE
from .._errors import ConfigurationError
from ._config import CONFIG
from ._retry import _NO_RESULT, Retry

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Attempt", "Attempts", "retrying"]

_State = Literal["start", "running", "waiting", "done"]


class Attempt:
    """One pass of an attempt loop: use it as ``with attempt:`` around the work.

    ``number`` is 1 for the first attempt. Leaving the block normally ends the loop;
    an exception the retry retries is swallowed (the loop goes on after the wait); any
    other, or the last one, propagates unchanged.
    """

    __slots__ = ("_run", "number")

    def __init__(self, run: _Run, number: int) -> None:
        self._run = run
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._run.settle(self.number, exc)

    def __repr__(self) -> str:
        return f"<Attempt {self.number} of {self._run.retry.name!r}>"


class _Run:
    """The state of one loop: where it started, which attempt, the wait, the last error."""

    __slots__ = ("attempt", "error", "limit", "retry", "start", "state", "wait")

    def __init__(self, retry: Retry) -> None:
        self.retry = retry
        self.attempt = 0
        self.start = 0.0
        self.limit: float | None = None
        self.wait = 0.0
        self.error: Exception | None = None
        self.state: _State = "start"

    def first(self) -> Attempt:
        retry = self.retry
        self.start = retry._clock()
        self.limit = _DEADLINE.get()
        if self.limit is not None and self.start >= self.limit:
            self.state = "done"
            raise retry._too_late(self.start - self.limit)
        budget = retry._budget
        if budget is not None:
            budget.deposit()
        return self._next_attempt()

    def _next_attempt(self) -> Attempt:
        self.attempt += 1
        self.state = "running"
        return Attempt(self, self.attempt)

    def pending_wait(self) -> float | None:
        """Before the next attempt: the wait to take, or None when the loop is over."""
        if self.state == "waiting":
            return self.wait
        # "running": the block was left without ``with attempt`` (or never entered); the
        # loop cannot know how it went, so it ends rather than repeat work blindly.
        self.state = "done"
        return None

    def after_wait(self, slept: bool) -> Attempt:
        error = self.error
        assert error is not None  # "waiting" is only entered with an error held
        if slept and not self.retry._may_start(self.attempt, self.start, self.limit, error):
            self.state = "done"
            self.error = None
            raise error
        self.error = None
        return self._next_attempt()

    def settle(self, number: int, exc: BaseException | None) -> bool:
        """At the end of attempt ``number``'s block: whether to swallow ``exc`` and go on."""
        if number != self.attempt or self.state != "running":
            raise ConfigurationError(
                f"{self.retry.name}: attempt {number} was used after the loop moved on"
            )
        retry = self.retry
        if exc is None:
            self.state = "done"
            if number == 1:
                registry = retry._registry
                if registry.active:
                    registry.emit_prebuilt(retry._success)
            else:
                retry._finish(number, "success", None)
            return False
        if not isinstance(exc, Exception):  # cancellation, Ctrl-C: never retried
            self.state = "done"
            return False
        try:
            wait = retry._decide(number, self.start, self.limit, exc, _NO_RESULT, self.wait)
        except BaseException:
            self.state = "done"
            raise
        if wait < 0:
            self.state = "done"
            return False
        self.wait = wait
        self.error = exc
        self.state = "waiting"
        return True


class _SyncAttempts(Iterator[Attempt]):
    __slots__ = ("_run",)

    def __init__(self, retry: Retry) -> None:
        self._run = _Run(retry)

    def __next__(self) -> Attempt:
        run = self._run
        if run.state == "start":
            return run.first()
        wait = run.pending_wait()
        if wait is None:
            raise StopIteration
        slept = False
        if not CONFIG.testing and wait > 0:
            (run.retry._sleep or time.sleep)(wait)
            slept = True
        return run.after_wait(slept)


class _AsyncAttempts(AsyncIterator[Attempt]):
    __slots__ = ("_run",)

    def __init__(self, retry: Retry) -> None:
        self._run = _Run(retry)

    async def __anext__(self) -> Attempt:
        run = self._run
        if run.state == "start":
            return run.first()
        wait = run.pending_wait()
        if wait is None:
            raise StopAsyncIteration
        slept = False
        if not CONFIG.testing and wait > 0:
            sleep = run.retry._sleep
            if sleep is None:
                import asyncio  # on the failure path only, as in Retry

                await asyncio.sleep(wait)
            else:
                result: Any = sleep(wait)
                if inspect.isawaitable(result):
                    await result
            slept = True
        return run.after_wait(slept)


class Attempts:
    """What :func:`retrying` returns: iterate it with ``for`` or ``async for``.

    Each iteration starts a fresh loop (its own start time, attempts and deadline), so
    one ``Attempts`` can be kept and looped over again.
    """

    __slots__ = ("_retry",)

    def __init__(self, retry: Retry) -> None:
        self._retry = retry

    def __iter__(self) -> Iterator[Attempt]:
        return _SyncAttempts(self._retry)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return _AsyncAttempts(self._retry)

    def __repr__(self) -> str:
        return f"retrying({self._retry!r})"


def retrying(strategy: Retry, /) -> Attempts:
    """An attempt loop on ``strategy`` (what ``retry(...)`` returns). See docs/retry.md.

    >>> import buttress
    >>> tries = []
    >>> policy = buttress.retry(on=KeyError, attempts=3, wait_initial=0, wait_max=0)
    >>> for attempt in buttress.retrying(policy):
    ...     with attempt:
    ...         tries.append(attempt.number)
    ...         if len(tries) < 3:
    ...             raise KeyError("not yet")
    >>> tries
    [1, 2, 3]
    """
    if not isinstance(strategy, Retry):
        raise ConfigurationError(f"retrying() takes a retry(...), got {strategy!r}")
    return Attempts(strategy)
