"""Hedging: when an attempt has not answered after a delay, send another; first answer wins.

As in "The Tail at Scale", Polly's hedging strategy and gRPC's hedging policy: for
idempotent calls only, a slow replica's latency is cut by racing a second attempt after
the hedging delay, fixed or the observed latency percentile (``LatencyEstimator``, fed
with the primary attempts' durations measured on the injected clock). Hedges are bounded
three ways: at most ``max_hedged`` per call, a budget (hedges at most a share of recent
calls, as retries) and, in sync code, a bounded pool of threads.

The twins differ in how they race. Async runs every attempt as a task and cancels the
losers (awaiting them, so their clean-up runs). Sync runs every attempt on the pool's
threads, each in a copy of the caller's context; a loser cannot be interrupted, so it is
abandoned: it runs to its end on its thread and its result goes to ``discard`` (to close
a response, say). With no free thread, the call runs in the caller's thread, unhedged.

Hedging is not retrying: an attempt that fails does not start another. The call fails
only when every attempt sent has failed, with the last failure, unchanged. A result
``on_result`` rejects is no answer either, but beats a failure when nothing better comes.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._args import Named, check_int, check_optional_name, seconds
from .._deadline import Clock
from .._errors import ConfigurationError
from .._events import HedgeSent, HedgeWon, Registry, default_registry
from ._budget import RetryBudget
from ._latency import LatencyEstimator
from ._retry import KEEP, Retry, _Keep, _number
from ._shell import Strategy

if TYPE_CHECKING:
    from asyncio import Task
    from datetime import timedelta

__all__ = ["Hedge", "hedge"]

R = TypeVar("R")
Discard = Callable[[Any], object]

_log = logging.getLogger("buttress")
_DEFAULT_NAME = "hedge"
_NOTHING: Any = object()


class _Workers:
    """At most ``limit`` threads for hedged attempts, never a queue: a submit that finds no
    free thread says so, and the caller does without."""

    __slots__ = ("_executor", "_free", "_lock", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)
        self._executor: Any = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        if not self._free.acquire(blocking=False):
            return False
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._executor = ThreadPoolExecutor(self.limit, "buttress-hedge")
                executor = self._executor
        try:
            executor.submit(self._run, fn, args)
        except BaseException:  # the interpreter shutting down: the slot is not lost
            self._free.release()
            raise
        return True

    def _run(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        finally:
            self._free.release()


class _Race:
    """The answers of one sync call's attempts; once decided, late answers are discarded."""

    __slots__ = ("answers", "decided", "discard", "lock")

    def __init__(self, discard: Discard | None) -> None:
        self.answers: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
        self.decided = False
        self.discard = discard
        self.lock = threading.Lock()

    def answer(self, index: int, ok: bool, value: Any) -> None:
        with self.lock:
            if not self.decided:
                self.answers.put((index, ok, value))
                return
        if ok:
            _discard(self.discard, value)

    def decide(self) -> None:
        """No more answers are wanted: those already in, and those to come, are discarded."""
        with self.lock:
            self.decided = True
        while True:
            try:
                _, ok, value = self.answers.get_nowait()
            except queue.Empty:
                return
            if ok:
                _discard(self.discard, value)


def _discard(discard: Discard | None, value: Any) -> None:
    if discard is None:
        return
    try:
        discard(value)
    except Exception:  # a loser's clean-up must not break the winner's call
        _log.exception("buttress hedge: discarding a losing answer failed")


class Hedge(Named, Strategy):
    """What :func:`hedge` returns: a decorator and caller. See :func:`hedge`."""

    __slots__ = (
        "_also",
        "_budget",
        "_clock",
        "_delay",
        "_discard",
        "_estimator",
        "_explicit",
        "_max_hedged",
        "_name",
        "_on_result",
        "_registry",
        "_workers",
    )

    def __init__(
        self,
        *,
        delay: float,
        estimator: LatencyEstimator | None,
        max_hedged: int,
        budget: RetryBudget | None,
        workers: _Workers,
        discard: Discard | None,
        name: str | None,
        events: Registry,
        clock: Clock,
        also: RetryBudget | None = None,
        on_result: Callable[[Any], bool] | None = None,
    ) -> None:
        self._also = also
        self._on_result = on_result
        self._delay = delay
        self._estimator = estimator
        self._max_hedged = max_hedged
        self._budget = budget
        self._workers = workers
        self._discard = discard
        self._name = name or _DEFAULT_NAME
        self._explicit = name is not None
        self._registry = events
        self._clock = clock

    def copy(
        self,
        *,
        name: str,
        discard: Discard | _Keep | None = KEEP,
        spend_from: Retry | None = None,
        on_result: Callable[[Any], bool] | _Keep | None = KEEP,
    ) -> Hedge:
        """A copy named ``name`` with a budget and latency estimate of its own.

        The thread pool (sync) is shared, so copies together stay within ``threads``.
        ``discard``, when given, replaces the clean-up of losing answers (the httpx
        transports close the losing responses). With ``spend_from``, every hedge must
        also fit in that retry's budget, so that its retries and hedges together stay
        within it (the transports pass each host's retry). ``on_result``, when given,
        replaces the predicate of results that are no answer (see :func:`hedge`).
        """
        if not isinstance(on_result, _Keep) and on_result is not None and not callable(on_result):
            raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
        if not isinstance(discard, _Keep) and discard is not None and not callable(discard):
            raise ConfigurationError(f"discard must be callable, got {discard!r}")
        if spend_from is not None and not isinstance(spend_from, Retry):
            raise ConfigurationError(f"spend_from must be a retry(...), got {spend_from!r}")
        budget = self._budget
        estimator = self._estimator
        return Hedge(
            delay=self._delay,
            estimator=None if estimator is None else estimator.fresh(),
            max_hedged=self._max_hedged,
            budget=None if budget is None else budget.fresh(),
            workers=self._workers,
            discard=self._discard if isinstance(discard, _Keep) else discard,
            name=check_optional_name(name),
            events=self._registry,
            clock=self._clock,
            also=None if spend_from is None else spend_from._budget,
            on_result=self._on_result if isinstance(on_result, _Keep) else on_result,
        )

    def current_delay(self) -> float:
        """The hedging delay now: the observed percentile once known, else ``delay``."""
        estimator = self._estimator
        if estimator is not None:
            observed = estimator.value
            if observed is not None:
                return observed
        return self._delay

    def __repr__(self) -> str:
        estimator = self._estimator
        delay = self._delay if estimator is None else f"p{estimator.percentile:g}"
        return (
            f"hedge(name={self._name!r}, delay={delay!r}, max_hedged={self._max_hedged}, "
            f"budget={self._budget!r})"
        )

    def _refuses(self, value: Any) -> bool:
        on_result = self._on_result
        return on_result is not None and bool(on_result(value))

    def _may_hedge(self) -> bool:
        budget = self._budget
        if budget is not None and not budget.try_withdraw():
            return False
        also = self._also
        # Withdrawn from the hedge's own first: a refusal by the shared one then costs the
        # hedge's budget one hedge, which only makes hedging stricter.
        return also is None or also.try_withdraw()

    def _sent(self, attempt: int, delay: float) -> None:
        if self._registry.active:
            self._registry.emit(HedgeSent(self._name, attempt, delay))

    def _won(self, index: int) -> None:
        if index > 0 and self._registry.active:
            self._registry.emit(HedgeWon(self._name, index + 1))

    # --- sync: threads, the losers abandoned --------------------------------------------

    def _attempt_sync(
        self,
        race: _Race,
        index: int,
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        start = self._clock()
        try:
            value = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread, which decides
            race.answer(index, False, exc)
        else:
            race.answer(index, True, value)
        finally:
            if index == 0 and self._estimator is not None:
                self._estimator.observe(self._clock() - start)

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        budget = self._budget
        if budget is not None:
            budget.deposit()
        race = _Race(self._discard)
        workers = self._workers
        if not workers.submit(
            self._attempt_sync, race, 0, contextvars.copy_context(), fn, args, kwargs
        ):
            return self._alone_sync(fn, args, kwargs)
        sent = running = 1
        delay: float | None = self.current_delay()
        refused: Any = _NOTHING  # the last result on_result said was no answer
        try:
            while True:
                wait = delay if sent <= self._max_hedged else None
                try:
                    index, ok, value = race.answers.get(timeout=wait)
                except queue.Empty:
                    context = contextvars.copy_context()
                    if self._may_hedge() and workers.submit(
                        self._attempt_sync, race, sent, context, fn, args, kwargs
                    ):
                        sent += 1
                        running += 1
                        self._sent(sent, delay or 0.0)
                    else:
                        delay = None  # no budget or no thread: this call is not hedged further
                    continue
                running -= 1
                if ok and not self._refuses(value):
                    if refused is not _NOTHING:
                        _discard(self._discard, refused)
                    self._won(index)
                    return value  # type: ignore[no-any-return]
                if ok:  # no answer: the others may still give one
                    if refused is not _NOTHING:
                        _discard(self._discard, refused)
                    refused = value
                    if running == 0:
                        return value  # type: ignore[no-any-return]
                elif running == 0:
                    if refused is not _NOTHING:  # a result beats a later failure
                        return refused  # type: ignore[no-any-return]
                    raise value
        finally:
            race.decide()

    def _alone_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        start = self._clock()
        try:
            return fn(*args, **kwargs)
        finally:
            if self._estimator is not None:
                self._estimator.observe(self._clock() - start)

    # --- async: tasks, the losers cancelled ------------------------------------------------

    async def _attempt_async(
        self,
        index: int,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        start = self._clock()
        try:
            return await fn(*args, **kwargs)
        finally:
            # A cancelled primary counts for as long as it ran: a lower bound that keeps
            # the estimate from forgetting the slow answers it gave up on.
            if index == 0 and self._estimator is not None:
                self._estimator.observe(self._clock() - start)

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        import asyncio

        budget = self._budget
        if budget is not None:
            budget.deposit()
        order: dict[Task[R], int] = {}
        pending: set[Task[R]] = set()
        primary = asyncio.ensure_future(self._attempt_async(0, fn, args, kwargs))
        order[primary] = 0
        pending.add(primary)
        sent = 1
        delay: float | None = self.current_delay()
        error: BaseException | None = None
        refused: Any = _NOTHING
        try:
            while True:
                wait = delay if sent <= self._max_hedged else None
                done, _ = await asyncio.wait(
                    pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if self._may_hedge():
                        task = asyncio.ensure_future(self._attempt_async(sent, fn, args, kwargs))
                        order[task] = sent
                        pending.add(task)
                        sent += 1
                        self._sent(sent, delay or 0.0)
                    else:
                        delay = None
                    continue
                pending -= done
                winner: Task[R] | None = None
                for task in sorted(done, key=order.__getitem__):
                    failure = task.exception()
                    if failure is not None:
                        error = failure
                    elif winner is not None:  # two answered at once: a loser too
                        await _discard_async(self._discard, task.result())
                    elif self._refuses(task.result()):  # no answer: wait for the others
                        if refused is not _NOTHING:
                            await _discard_async(self._discard, refused)
                        refused = task.result()
                    else:
                        winner = task
                if winner is not None:
                    if refused is not _NOTHING:
                        await _discard_async(self._discard, refused)
                    self._won(order[winner])
                    return winner.result()
                if not pending:
                    if refused is not _NOTHING:  # a result beats a failure
                        return refused  # type: ignore[no-any-return]
                    assert error is not None
                    raise error
        finally:
            if pending:
                for task in pending:
                    task.cancel()
                # Awaited so that the losers' clean-up (closing connections) has run.
                for outcome in await asyncio.gather(*pending, return_exceptions=True):
                    if not isinstance(outcome, BaseException):
                        await _discard_async(self._discard, outcome)


async def _discard_async(discard: Discard | None, value: Any) -> None:
    if discard is None:
        return
    try:
        result = discard(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("buttress hedge: discarding a losing answer failed")


def hedge(
    *,
    delay: float | timedelta = 0.1,
    percentile: float | None = None,
    max_hedged: int = 1,
    budget: float | None = 0.1,
    budget_floor: float = 1.0,
    threads: int = 32,
    on_result: Callable[[Any], bool] | None = None,
    discard: Discard | None = None,
    name: str | None = None,
    events: Registry | None = None,
    clock: Clock = time.monotonic,
) -> Hedge:
    """Race another attempt when one has not answered after ``delay``. For idempotent calls.

    ``percentile`` (say 95) makes the delay the observed latency percentile of recent
    first attempts, with ``delay`` used until 20 are known. At most ``max_hedged`` hedges
    per call (1), and at most ``budget`` (10 %) of recent calls plus ``budget_floor`` per
    second, so hedging cannot double the load on a dependency that is slow for everyone.
    Sync calls run on at most ``threads`` threads; losers are abandoned and their results
    passed to ``discard``; async losers are cancelled. A result ``on_result`` rejects (a
    503, say) is no answer: the others may still give one, and it is returned only if
    none does. Emits ``HedgeSent`` and ``HedgeWon``. See docs/hedging.md.
    """
    wait = seconds(delay, "delay")
    estimator = None
    if percentile is not None:
        estimator = LatencyEstimator(percentile=_number(percentile, "percentile", low=1, high=100))
    check_int("max_hedged", max_hedged, minimum=1)
    check_int("threads", threads, minimum=1)
    share = None if budget is None else _number(budget, "budget (a share)", low=0.0, high=1.0)
    floor = _number(budget_floor, "budget_floor", low=0.0)
    if discard is not None and not callable(discard):
        raise ConfigurationError(f"discard must be callable, got {discard!r}")
    if on_result is not None and not callable(on_result):
        raise ConfigurationError(f"on_result must be a predicate, got {on_result!r}")
    return Hedge(
        delay=wait,
        estimator=estimator,
        max_hedged=max_hedged,
        budget=None
        if share is None
        else RetryBudget(ratio=share, floor_per_second=floor, clock=clock),
        workers=_Workers(threads),
        discard=discard,
        name=check_optional_name(name),
        events=events if events is not None else default_registry,
        clock=clock,
        on_result=on_result,
    )
