"""One replica of the batched outage test: a shared breaker and limiter called in a loop.

The parent steers it through shared flags (``fail``: this replica's dependency fails)
and reads its breaker's state and call count from shared arrays; the worker sends its
tallies back on a queue when it stops.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from buttress import CircuitBreaker, CircuitOpen, Policy, RateLimited, RateLimiter, RedisStore

STATES = ("closed", "open", "half_open", "forced_open", "forced_closed")


class DependencyDown(Exception):
    pass


def run(index: int, url: str, stop: Any, fail: Any, states: Any, calls: Any, results: Any) -> None:
    store = RedisStore(
        url,
        service="batched-outage",
        mode="batched",
        sync_interval=0.1,
        socket_timeout=0.25,
        retry_interval=0.2,
    )
    breaker = CircuitBreaker("shared", consecutive_failures=5, reset_timeout=60, store=store)
    limiter = RateLimiter("shared", rate=400, burst=40, store=store)
    policy = Policy(limiter, breaker)

    def dependency() -> str:
        if fail.is_set():
            raise DependencyDown
        return "ok"

    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    while not stop.is_set():
        states[index] = STATES.index(breaker.state)
        try:
            policy.call(dependency)
            outcomes["ok"] += 1
        except DependencyDown:
            outcomes["dependency down"] += 1
        except CircuitOpen:
            outcomes["breaker open"] += 1
        except RateLimited:
            outcomes["rate limited"] += 1
        except Exception as exc:  # what the test is about: no Redis error reaches a caller
            errors.append(f"{type(exc).__name__}: {exc}")
        calls[index] += 1
        time.sleep(0.002)  # three workers and Redis share two cores with the suite
    store.close()
    results.put((index, dict(outcomes), errors[:20], len(errors)))
