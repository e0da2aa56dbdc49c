"""The load generator: ``python -m tests.reliability._load_driver URL SECONDS CONCURRENCY``.

It runs in its own process (so it does not share a core's worth of Python with the
server), keeps ``CONCURRENCY`` requests in flight for ``SECONDS`` against a few routes of
the app at ``URL``, and prints one JSON line: every response it saw, by status, the
transport errors, and latency quantiles.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import httpx


async def drive(url: str, seconds: float, concurrency: int) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        stop_at = time.monotonic() + seconds

        async def worker(index: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                path = f"/users/{index * 100_000 + n}" if n % 4 else "/items?page=2"
                start = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[response.status_code] += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "responses": sum(statuses.values()),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": latencies[-1] if latencies else 0.0,
    }


def main(argv: list[str]) -> int:
    url, seconds, concurrency = argv[0], float(argv[1]), int(argv[2])
    print(json.dumps(asyncio.run(drive(url, seconds, concurrency))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
