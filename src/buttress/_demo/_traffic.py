"""The traffic generator: a steady, bounded stream of requests to the demo service."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ._stats import DemoStats

SKUS = tuple(f"sku-{i}" for i in range(20))


async def drive(
    base_url: str,
    stats: DemoStats,
    *,
    rate: float,
    duration: float,
    stop: asyncio.Event,
    max_in_flight: int = 200,
) -> int:
    """Send ``rate`` requests per second for ``duration`` seconds (or until ``stop``).

    Requests are started on a fixed schedule whether or not earlier ones finished, as real
    clients do, with at most ``max_in_flight`` outstanding so a stalled service cannot make
    the generator grow without bound. Returns how many requests were sent.
    """
    rng = random.Random(11)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=64)
    timeout = httpx.Timeout(5.0)
    in_flight: set[asyncio.Task[None]] = set()
    sent = 0
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:

        async def one(path: str) -> None:
            start = time.perf_counter()
            try:
                response = await client.get(path)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            stats.record(status, time.perf_counter() - start)

        interval = 1.0 / rate
        begin = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now - begin >= duration:
                break
            next_at = begin + (sent + 1) * interval
            if len(in_flight) < max_in_flight:
                task = asyncio.create_task(one(f"/quote/{rng.choice(SKUS)}"))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            else:
                next_at = now + interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=6.0)
    return sent
