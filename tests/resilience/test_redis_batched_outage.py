"""Batched shared state across real processes while a real redis-server is killed, paused
(SIGSTOP) and restarted empty: no caller sees an error, and the fleet converges after.

Every wait is on a condition, bounded; nothing asserts how long a step took.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import pytest
import redis

from buttress import RedisStore

from .._services import RedisServer
from . import _batched_worker

pytestmark = pytest.mark.redis

WORKERS = 3
OPEN = _batched_worker.STATES.index("open")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.01)


def test_kill_pause_and_empty_restarts_under_three_processes(redis_server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    fails = [context.Event() for _ in range(WORKERS)]
    states = context.Array("i", WORKERS)
    calls = context.Array("i", WORKERS)
    results = context.Queue()
    workers = [
        context.Process(
            target=_batched_worker.run,
            args=(i, redis_server.url, stop, fails[i], states, calls, results),
            daemon=True,
        )
        for i in range(WORKERS)
    ]
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    store = RedisStore(redis_server.url, service="batched-outage")
    fleet_key = f"{store.key('breaker', 'shared')}:fleet"
    lease_key = f"{store.key('ratelimit', 'shared')}:lease"

    def progress(what: str) -> None:
        """Every worker made calls since now."""
        marks = calls[:]
        wait_until(lambda: all(c > m + 20 for c, m in zip(calls[:], marks, strict=True)), 20, what)

    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: bool(client.exists(fleet_key) and client.exists(lease_key)), 30, "up")
        progress("all workers calling")

        redis_server.stop()  # killed
        progress("calls go on while Redis is gone")
        redis_server.start()  # empty
        wait_until(lambda: bool(client.exists(fleet_key) and client.exists(lease_key)), 10, "back")
        progress("calls go on after the restart")

        redis_server.pause()  # SIGSTOP: connections hang instead of failing
        progress("calls go on while Redis is paused")
        redis_server.resume()
        progress("calls go on after the pause")

        # One replica's dependency fails: its trip opens the breaker for the fleet.
        fails[0].set()
        wait_until(lambda: all(s == OPEN for s in states[:]), 10, "every replica open")
        wait_until(lambda: client.hget(fleet_key, "st") == b"1", 5, "open in Redis")
        fails[0].clear()

        # An empty restart while open: rebuilt from the replicas' views, still open.
        redis_server.stop()
        redis_server.start()
        wait_until(lambda: client.hget(fleet_key, "st") == b"1", 10, "rebuilt open in Redis")
        progress("calls go on after the second restart")
        assert all(s == OPEN for s in states[:])
    finally:
        stop.set()
        tallies = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
        client.close()
    for index, outcomes, errors, error_count in tallies:
        assert error_count == 0, (index, errors)
        assert outcomes.get("ok", 0) > 0
    assert any(t[1].get("breaker open", 0) > 0 for t in tallies)
