"""Circuit breaker: concurrency under slow calls, and success-path overhead, next to peers.

The concurrency run is the one that matters most: pybreaker holds its lock for the whole
protected call, so slow calls through it run one at a time. Ours takes the lock only to
admit and to record.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import circuitbreaker
import pybreaker
import redis
from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory

from benchmarks._harness import compare_async, compare_sync, report
from buttress import CircuitBreaker, RateLimiter, RedisStore
from buttress._events import Registry

THREADS = 8
CALL_SECONDS = 0.010


def _concurrent(call: Callable[[], object], threads: int, per_thread: int) -> float:
    start_line = threading.Barrier(threads + 1)

    def work() -> None:
        start_line.wait()
        for _ in range(per_thread):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    start_line.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - began


def concurrency(quick: bool) -> str:
    per_thread = 20 if quick else 100

    def slow() -> None:
        time.sleep(CALL_SECONDS)

    ours = CircuitBreaker("bench", events=Registry())(slow)
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    contenders: dict[str, Callable[[], object]] = {
        "unprotected": slow,
        "buttress": ours,
        "pybreaker": lambda: theirs.call(slow),
    }
    best = {
        name: min(_concurrent(fn, THREADS, per_thread) for _ in range(2))
        for name, fn in contenders.items()
    }
    base = best["unprotected"]
    lines = [
        f"## breaker, {THREADS} threads x {per_thread} calls of {CALL_SECONDS * 1000:.0f} ms",
        "",
        "| contender | wall time (s) | x unprotected |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {t:.3f} | {t / base:.2f} |" for name, t in best.items()]
    return "\n".join(lines) + "\n"


def overhead(quick: bool) -> str:
    number = 2_000 if quick else 50_000

    def bare() -> int:
        return 1

    async def abare() -> int:
        return 1

    ours = CircuitBreaker("bench", events=Registry())
    ours_sync, ours_async = ours(bare), ours(abare)
    pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    cb_sync = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(bare)
    purg_sync = SyncCircuitBreakerFactory()("bench")(bare)
    sync = compare_sync(
        {
            "bare": bare,
            "buttress": ours_sync,
            "pybreaker": lambda: pyb.call(bare),
            "circuitbreaker": cb_sync,
            "purgatory": purg_sync,
        },
        number=number,
    )

    purgatory_async = AsyncCircuitBreakerFactory()
    semaphore = asyncio.Semaphore(10)
    cb_async: Any = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(abare)

    async def call_bare() -> int:
        return await abare()

    async def call_ours() -> int:
        return await ours_async()

    async def call_cb() -> int:
        result: int = await cb_async()
        return result

    async def call_purgatory() -> int:
        async with await purgatory_async.get_breaker("bench"):
            return await abare()

    async def call_semaphore() -> int:
        async with semaphore:
            return await abare()

    asyn = compare_async(
        {
            "bare": call_bare,
            "buttress": call_ours,
            "asyncio.Semaphore": call_semaphore,
            "circuitbreaker": call_cb,
            "purgatory": call_purgatory,
        },
        number=number,
    )
    return (
        report("breaker success path, sync", sync, baseline="bare", against="pybreaker")
        + "\n"
        + report("breaker success path, async", asyn, baseline="bare", against="purgatory")
    )


def shared_state(quick: bool) -> str:
    """What sharing costs: a breaker and a rate limiter backed by a loopback redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        return "## shared state in Redis\n\nskipped: redis-server is not installed\n"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
        store = RedisStore(f"redis://127.0.0.1:{port}/0", service="bench", socket_timeout=2)
        client = redis.Redis(host="127.0.0.1", port=port)

        def bare() -> int:
            return 1

        breaker = CircuitBreaker("bench", store=store, events=Registry())(bare)
        limiter = RateLimiter("bench", rate=1e12, burst=10**9, store=store, events=Registry())
        results = compare_sync(
            {
                "bare": bare,
                "redis PING (one round trip)": client.ping,
                "CircuitBreaker + RedisStore": breaker,
                "RateLimiter + RedisStore": limiter(bare),
            },
            number=200 if quick else 2_000,
            rounds=3 if quick else 5,
        )
        client.close()
        store.close()
    finally:
        server.terminate()
        server.wait(10)
    return report(
        "shared state in Redis, sync",
        results,
        baseline="bare",
        against="redis PING (one round trip)",
    )


def main(quick: bool = False) -> str:
    return concurrency(quick) + "\n" + overhead(quick) + "\n" + shared_state(quick)


if __name__ == "__main__":
    print(main())
