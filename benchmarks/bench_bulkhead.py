"""Bulkhead and rate limiter: success-path overhead next to the standard library's semaphores."""

from __future__ import annotations

import asyncio
import threading

from benchmarks._harness import compare_async, compare_sync, report
from buttress import Bulkhead, RateLimiter
from buttress._events import Registry


def main(quick: bool = False) -> str:
    number = 2_000 if quick else 50_000

    def bare() -> int:
        return 1

    async def abare() -> int:
        return 1

    bulkhead = Bulkhead("bench", max_concurrent=10, events=Registry())
    limiter = RateLimiter("bench", rate=1e12, burst=10**9, events=Registry())
    semaphore = threading.BoundedSemaphore(10)

    def with_semaphore() -> int:
        with semaphore:
            return bare()

    sync = compare_sync(
        {
            "bare": bare,
            "threading.BoundedSemaphore": with_semaphore,
            "buttress Bulkhead": bulkhead(bare),
            "buttress RateLimiter": limiter(bare),
        },
        number=number,
    )

    asemaphore = asyncio.Semaphore(10)
    bulkhead_async, limiter_async = bulkhead(abare), limiter(abare)

    async def call_bare() -> int:
        return await abare()

    async def call_semaphore() -> int:
        async with asemaphore:
            return await abare()

    async def call_bulkhead() -> int:
        return await bulkhead_async()

    async def call_limiter() -> int:
        return await limiter_async()

    asyn = compare_async(
        {
            "bare": call_bare,
            "asyncio.Semaphore": call_semaphore,
            "buttress Bulkhead": call_bulkhead,
            "buttress RateLimiter": call_limiter,
        },
        number=number,
    )
    return (
        report(
            "bulkhead and rate limiter, sync",
            sync,
            baseline="bare",
            against="threading.BoundedSemaphore",
        )
        + "\n"
        + report(
            "bulkhead and rate limiter, async", asyn, baseline="bare", against="asyncio.Semaphore"
        )
    )


if __name__ == "__main__":
    print(main())
