"""Concurrency invariants of the in-memory breaker: 64 threads and 1,000 asyncio tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from buttress import CircuitBreaker, CircuitOpen
from buttress.resilience._breaker import LocalBreaker
from buttress.testing import FakeClock

from ._clock import state

THREADS = 64
TASKS = 1_000


class Boom(Exception):
    pass


def counting_breaker(clock: FakeClock) -> CircuitBreaker:
    # Never trips (a failure rate of 100% is never reached): every outcome must be counted.
    return CircuitBreaker(
        "stress",
        consecutive_failures=None,
        failure_rate=1.0,
        window=1_000_000,
        minimum_calls=1_000_000,
        clock=clock,
    )


def totals(breaker: CircuitBreaker) -> tuple[int, int, int]:
    backend = breaker._backend
    assert isinstance(backend, LocalBreaker)
    return backend.core.window_totals(0)


def test_no_outcome_is_lost_across_threads() -> None:
    breaker = counting_breaker(FakeClock())
    per_thread = 200
    start = threading.Barrier(THREADS)

    def work(seed: int) -> None:
        start.wait(10)
        for i in range(per_thread):
            try:
                with breaker:
                    if (seed + i) % 3 == 0:
                        raise Boom
            except Boom:
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expected_failures = sum(
        1 for n in range(THREADS) for i in range(per_thread) if (n + i) % 3 == 0
    )
    assert totals(breaker) == (THREADS * per_thread, expected_failures, 0)


async def test_no_outcome_is_lost_across_tasks() -> None:
    breaker = counting_breaker(FakeClock())

    async def work(n: int) -> None:
        try:
            async with breaker:
                await asyncio.sleep(0)
                if n % 4 == 0:
                    raise Boom
        except Boom:
            pass

    await asyncio.gather(*(work(n) for n in range(TASKS)))
    assert totals(breaker) == (TASKS, TASKS // 4, 0)


def test_half_open_admits_no_more_than_its_permits_across_threads() -> None:
    clock = FakeClock()
    permits = 3
    breaker = CircuitBreaker(
        "stress", consecutive_failures=1, half_open_permits=permits, reset_timeout=1, clock=clock
    )
    with pytest.raises(Boom), breaker:
        raise Boom
    clock.advance(1)
    release = threading.Event()
    lock = threading.Lock()
    admitted = rejected = 0
    everyone = threading.Barrier(THREADS)

    def trial() -> None:
        nonlocal admitted
        with lock:
            admitted += 1
        assert release.wait(10)

    def work() -> None:
        nonlocal rejected
        everyone.wait(10)
        try:
            breaker.call(trial)
        except CircuitOpen:
            with lock:
                rejected += 1

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for _ in range(1_000):  # bounded: until every thread has been admitted or refused
        with lock:
            if admitted + rejected == THREADS:
                break
        threading.Event().wait(0.005)
    assert (admitted, rejected) == (permits, THREADS - permits)
    release.set()
    for t in threads:
        t.join(10)
    assert state(breaker) == "closed"


async def test_half_open_admits_no_more_than_its_permits_across_tasks() -> None:
    clock = FakeClock()
    permits = 5
    breaker = CircuitBreaker(
        "stress", consecutive_failures=1, half_open_permits=permits, reset_timeout=1, clock=clock
    )
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    clock.advance(1)
    release = asyncio.Event()
    admitted = 0

    async def trial() -> None:
        nonlocal admitted
        admitted += 1
        await release.wait()

    async def work() -> bool:
        try:
            await breaker.call(trial)
        except CircuitOpen:
            return False
        return True

    tasks = [asyncio.create_task(work()) for _ in range(TASKS)]
    for _ in range(100):  # bounded: the rejected ones finish within a few loop turns
        if sum(t.done() for t in tasks) >= TASKS - permits:
            break
        await asyncio.sleep(0)
    assert admitted == permits
    release.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == permits
    assert state(breaker) == "closed"
