"""Redis killed and restarted under two worker processes sharing breaker and rate-limiter
state: no caller sees a Redis error, and the shared state converges after the restart."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import pytest
import redis

from buttress import CircuitBreaker, RedisStore

from .._services import RedisServer
from . import _redis_worker
from .conftest import Figures

pytestmark = [pytest.mark.reliability, pytest.mark.redis]

WORKERS = 2


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; how long it took. Fails the test past ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def test_redis_restart_under_two_processes(
    redis_server: RedisServer, scale: float, figures: Figures
) -> None:
    context = multiprocessing.get_context("spawn")
    stop, fail = context.Event(), context.Event()
    pauses = [context.Event() for _ in range(WORKERS)]
    states = context.Array("i", WORKERS)
    calls = context.Array("i", WORKERS)
    results = context.Queue()
    workers = [
        context.Process(
            target=_redis_worker.run,
            args=(i, redis_server.url, stop, fail, pauses[i], states, calls, results),
            daemon=True,
        )
        for i in range(WORKERS)
    ]
    phase = 1.0 * scale
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: min(calls[:]) > 0, 30, "both workers calling")
        time.sleep(phase)
        before_outage = sum(calls[:])

        redis_server.stop()
        time.sleep(phase)
        during_outage = sum(calls[:]) - before_outage

        redis_server.start()
        time.sleep(phase)
        client = redis.Redis.from_url(redis_server.url)
        store = RedisStore(redis_server.url, service="reliability", socket_timeout=5)
        limiter_key_back = wait_until(
            lambda: bool(client.exists(store.key("ratelimit", "shared"))),
            5,
            "the shared rate limiter back in Redis",
        )

        # Convergence: worker 1 only watches; worker 0's failures open the breaker in
        # Redis, and worker 1 sees it open. A reset from a third party closes it for both.
        pauses[1].set()
        fail.set()
        opened_after = wait_until(
            lambda: all(s == _redis_worker.STATES.index("open") for s in states[:]),
            10,
            "both workers seeing the shared breaker open",
        )
        fail.clear()
        CircuitBreaker("shared", consecutive_failures=5, reset_timeout=60, store=store).reset()
        closed_after = wait_until(
            lambda: all(s == _redis_worker.STATES.index("closed") for s in states[:]),
            10,
            "both workers seeing the shared breaker closed",
        )
        pauses[1].clear()
        client.close()
        store.close()
    finally:
        stop.set()
        reports = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():  # pragma: no cover - only if a worker hangs
                worker.terminate()
    reports.sort()
    errors = [error for report in reports for error in report[2]]
    error_count = sum(report[3] for report in reports)
    figures(
        "Redis stopped and restarted under 2 processes (breaker + rate limiter)",
        {
            "calls": sum(calls[:]),
            "calls while Redis was down": during_outage,
            "caller errors from Redis": error_count,
            "outcomes per worker": [report[1] for report in reports],
            "store events per worker": [report[4] for report in reports],
            "limiter state back in Redis after restart, s": limiter_key_back,
            "both saw the shared breaker open after, s": opened_after,
            "both saw it closed after a reset, s": closed_after,
        },
    )
    assert error_count == 0, errors
    assert during_outage > 0
    for report in reports:
        assert report[4].get("StoreUnavailable", 0) >= 1
        assert report[4].get("StoreRecovered", 0) >= 1
