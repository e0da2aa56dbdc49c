"""Bulkhead: the limit holds under 64 threads and 1,000 tasks; waiting is bounded and fair."""

from __future__ import annotations

import asyncio
import threading
import types

import pytest

from buttress import Bulkhead, BulkheadFull, ConfigurationError
from buttress._events import BulkheadRejected, BulkheadUsage, Registry
from buttress.resilience import _bulkhead


def test_rejects_when_full_and_exposes_usage() -> None:
    bulkhead = Bulkhead("db", max_concurrent=2)
    with bulkhead, bulkhead:
        assert (bulkhead.in_use, bulkhead.waiting) == (2, 0)
        with pytest.raises(BulkheadFull) as info:
            bulkhead.call(lambda: None)
        assert info.value.name == "db"
    assert bulkhead.in_use == 0
    assert bulkhead.call(lambda: 7) == 7
    assert "in_use=0/2" in repr(bulkhead)


def test_a_waiting_thread_gets_the_released_slot() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=1, wait_timeout=10)
    bulkhead.acquire()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(bulkhead.call(lambda: 1)))
    waiter.start()
    for _ in range(1_000):  # bounded: until the thread is in the queue
        if bulkhead.waiting == 1:
            break
        threading.Event().wait(0.002)
    assert bulkhead.waiting == 1
    with pytest.raises(BulkheadFull):  # the one waiting place is taken
        bulkhead.call(lambda: None)
    bulkhead.release()
    waiter.join(10)
    assert got == [1]
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


class _TimedOutEvent(threading.Event):
    """A waiter's Event whose timed wait ends at once, unset: the wait timeout passed."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


def test_wait_timeout_rejects_and_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=5, wait_timeout=30, events=registry)
    fake = types.SimpleNamespace(Event=_TimedOutEvent, Lock=threading.Lock)
    monkeypatch.setattr(_bulkhead, "threading", fake)  # no real wait for the timeout
    with registry.capture() as events, bulkhead:
        with pytest.raises(BulkheadFull, match="waited too long"):
            bulkhead.call(lambda: None)
        assert bulkhead.waiting == 0
    assert BulkheadRejected("db", "wait_timeout") in events
    assert BulkheadUsage("db", 1, 0, 1) in events
    assert events[-1] == BulkheadUsage("db", 0, 0, 1)


def test_rejection_event_when_full() -> None:
    registry = Registry()
    bulkhead = Bulkhead("db", max_concurrent=1, events=registry)
    with registry.capture() as events, bulkhead, pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)
    assert BulkheadRejected("db", "full") in events


def test_limit_holds_under_64_threads() -> None:
    limit, threads_n, per_thread = 4, 64, 20
    bulkhead = Bulkhead("db", max_concurrent=limit, max_waiting=threads_n, wait_timeout=30)
    lock = threading.Lock()
    active = peak = done = 0
    start = threading.Barrier(threads_n)

    def inside() -> None:
        nonlocal active, peak, done
        with lock:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.0001)
        with lock:
            active -= 1
            done += 1

    def work() -> None:
        start.wait(10)
        for _ in range(per_thread):
            bulkhead.call(inside)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert done == threads_n * per_thread  # nobody was turned away: everyone could wait
    assert 1 <= peak <= limit
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_limit_holds_under_1000_tasks() -> None:
    limit, tasks_n = 10, 1_000
    bulkhead = Bulkhead("db", max_concurrent=limit, max_waiting=tasks_n, wait_timeout=30)
    active = peak = 0

    async def inside() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1

    await asyncio.gather(*(bulkhead.call(inside) for _ in range(tasks_n)))
    assert peak == limit
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_overflow_tasks_are_rejected_not_queued_beyond_max_waiting() -> None:
    bulkhead = Bulkhead("db", max_concurrent=2, max_waiting=3, wait_timeout=30)
    gate = asyncio.Event()

    async def hold() -> None:
        await gate.wait()

    tasks = [asyncio.create_task(bulkhead.call(hold)) for _ in range(10)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert (bulkhead.in_use, bulkhead.waiting) == (2, 3)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, BulkheadFull) for r in results) == 5
    assert sum(r is None for r in results) == 5


async def test_cancelled_waiter_leaves_the_line_and_never_leaks_a_slot() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=2, wait_timeout=30)
    await bulkhead.acquire_async()
    waiting = asyncio.create_task(bulkhead.acquire_async())
    await asyncio.sleep(0)
    assert bulkhead.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert bulkhead.waiting == 0
    # Granted and cancelled before it ran: the slot must pass on, not vanish.
    granted = asyncio.create_task(bulkhead.acquire_async())
    await asyncio.sleep(0)
    bulkhead.release()  # hands the slot to ``granted``
    granted.cancel()
    with pytest.raises(asyncio.CancelledError):
        await granted
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_async_wait_timeout_and_context_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop's clock is moved by hand: the wait times out without any real waiting.
    loop = asyncio.get_running_loop()
    real_time = loop.time
    skipped = 0.0
    monkeypatch.setattr(loop, "time", lambda: real_time() + skipped)
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=1, wait_timeout=30)

    async def enter() -> None:
        async with bulkhead:
            pass

    async with bulkhead:
        waiter = asyncio.create_task(enter())
        for _ in range(100):  # bounded: until the waiter is in the queue
            if bulkhead.waiting:
                break
            await asyncio.sleep(0)
        assert bulkhead.waiting == 1
        skipped = 30.0
        with pytest.raises(BulkheadFull, match="waited too long"):
            await waiter
    assert (bulkhead.in_use, bulkhead.waiting) == (0, 0)


async def test_a_thread_hands_its_slot_to_a_task() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1, max_waiting=1, wait_timeout=30)
    bulkhead.acquire()
    task = asyncio.create_task(bulkhead.call(asyncio.sleep, 0, "ran"))
    await asyncio.sleep(0)
    assert bulkhead.waiting == 1
    threading.Thread(target=bulkhead.release).start()
    assert await asyncio.wait_for(task, 10) == "ran"
    assert bulkhead.in_use == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_waiting": -1}, "max_waiting"),
        ({"wait_timeout": -1}, "wait_timeout"),
        ({"wait_timeout": "1s"}, "wait_timeout"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Bulkhead("db", **kwargs)  # type: ignore[arg-type]


def test_releasing_more_than_acquired_is_an_error() -> None:
    bulkhead = Bulkhead("db")
    with pytest.raises(RuntimeError, match="released more"):
        bulkhead.release()
    assert bulkhead.in_use == 0
