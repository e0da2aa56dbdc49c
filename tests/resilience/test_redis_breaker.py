"""A breaker shared through a real redis-server: across stores, processes and outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from buttress import CircuitBreaker, CircuitOpen, ConfigurationError, RedisStore
from buttress._events import (
    BreakerTransition,
    Registry,
    StoreRecovered,
    StoreUnavailable,
)
from buttress.testing import FakeClock

from .._services import RedisServer
from ._clock import state

pytestmark = pytest.mark.redis

# A generous timeout: on a loaded CI machine a live Redis may answer slowly, and a
# timeout would (correctly) switch to local state and muddle what these tests check.
# A stopped server refuses connections at once, whatever the timeout.
LOADED = 5.0

ROOT = Path(__file__).resolve().parents[2]


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def shared(server: RedisServer, clock: FakeClock | None = None, **kwargs: object) -> CircuitBreaker:
    options: dict[str, object] = {"consecutive_failures": 3, "reset_timeout": 60}
    options.update(kwargs)
    store = RedisStore(server.url, service="svc", socket_timeout=LOADED, clock=clock or FakeClock())
    return CircuitBreaker("payments", store=store, **options)  # type: ignore[arg-type]


def end_open_period(server: RedisServer, store: RedisStore, name: str = "payments") -> None:
    """Let the open period end now, as the server's clock would after reset_timeout."""
    client = redis.Redis.from_url(server.url)
    client.hset(store.key("breaker", name), "ou", 0)
    client.close()


def failures(breaker: CircuitBreaker, count: int) -> None:
    for _ in range(count):
        with pytest.raises(Boom):
            breaker.call(boom)


def test_two_stores_share_one_breaker(redis_server: RedisServer) -> None:
    first, second = shared(redis_server), shared(redis_server)
    failures(first, 2)
    failures(second, 1)  # the third consecutive failure, seen by the other replica
    with pytest.raises(CircuitOpen) as info:
        first.call(lambda: None)
    assert 59 < (info.value.retry_after or 0) <= 60
    assert state(second) == "open"


def test_half_open_permits_are_shared(redis_server: RedisServer) -> None:
    first, second = shared(redis_server, half_open_permits=1), shared(redis_server)
    failures(first, 3)
    end_open_period(redis_server, first._backend._store)  # type: ignore[attr-defined]
    with first:  # the one trial is out ...
        with pytest.raises(CircuitOpen):
            second.call(lambda: None)  # ... so the other replica is refused
        assert state(second) == "half_open"
    assert state(second) == "closed"


def test_a_trial_lost_with_its_replica_does_not_block_half_open_forever(
    redis_server: RedisServer,
) -> None:
    first, second = shared(redis_server, half_open_permits=1), shared(redis_server)
    failures(first, 3)
    store = first._backend._store  # type: ignore[attr-defined]
    end_open_period(redis_server, store)
    assert first._backend.admit() >= 0  # a trial admitted, and never recorded
    with pytest.raises(CircuitOpen):
        second.call(lambda: None)
    end_open_period(redis_server, store)  # a reset timeout later (server clock)
    assert second.call(lambda: "new trial") == "new trial"
    assert state(second) == "closed"


def test_failed_trial_reopens_with_backoff(redis_server: RedisServer) -> None:
    breaker = shared(redis_server, reset_backoff=2, max_reset_timeout=100)
    failures(breaker, 3)
    end_open_period(redis_server, breaker._backend._store)  # type: ignore[attr-defined]
    failures(breaker, 1)
    assert 119 > (breaker.time_until_half_open or 0) > 99  # 60 x 2 capped at 100


def test_two_processes_share_one_breaker(redis_server: RedisServer) -> None:
    def child(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tests.resilience._redis_child", redis_server.url, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    parent = CircuitBreaker(
        "shared",
        consecutive_failures=3,
        reset_timeout=60,
        store=RedisStore(redis_server.url, service="two-processes", socket_timeout=LOADED),
    )
    failures(parent, 1)
    assert child("fail", "3") == "failed failed open"  # 1 here + 2 there trip it
    with pytest.raises(CircuitOpen):
        parent.call(lambda: None)
    parent.reset()
    assert child("try") == "ok"


def test_rate_and_time_windows_in_redis(redis_server: RedisServer) -> None:
    counted = shared(
        redis_server,
        consecutive_failures=None,
        failure_rate=0.5,
        window=4,
        minimum_calls=4,
    )
    for _ in range(3):
        counted.call(lambda: None)
    failures(counted, 1)
    assert state(counted) == "closed"
    failures(counted, 1)  # last 4: ok ok fail fail
    assert state(counted) == "open"
    timed = CircuitBreaker(
        "timed",
        consecutive_failures=None,
        slow_call_rate=0.5,
        slow_call_duration=1.0,
        window=60,
        window_type="time",
        minimum_calls=2,
        store=RedisStore(redis_server.url, service="svc", socket_timeout=LOADED),
        clock=FakeClock(),
    )
    timed.call(lambda: None)
    clock = timed._clock
    assert isinstance(clock, FakeClock)
    timed.call(lambda: clock.advance(2))  # slow: 1 of 2
    assert state(timed) == "open"


def test_transitions_are_announced_and_manual_control_is_shared(redis_server: RedisServer) -> None:
    registry = Registry()
    seen: list[BreakerTransition] = []
    first = shared(redis_server, events=registry, on_transition=seen.append)
    second = shared(redis_server)
    with registry.capture() as events:
        failures(first, 3)
    assert BreakerTransition("payments", "closed", "open", "consecutive_failures") in events
    assert seen == [BreakerTransition("payments", "closed", "open", "consecutive_failures")]
    second.force_closed()
    assert first.call(lambda: 1) == 1
    second.force_open()
    with pytest.raises(CircuitOpen) as info:
        first.call(lambda: 1)
    assert info.value.retry_after is None
    assert first.time_until_half_open is None
    second.reset()
    assert state(first) == "closed"


def test_keys_are_namespaced_and_expire(redis_server: RedisServer) -> None:
    counted = shared(redis_server, failure_rate=0.9)
    timed = CircuitBreaker(
        "search",
        failure_rate=0.9,
        window=30,
        window_type="time",
        store=RedisStore(redis_server.url, service="svc", socket_timeout=LOADED),
    )
    failures(counted, 1)
    with pytest.raises(Boom):
        timed.call(boom)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = sorted(client.keys("*"))
    assert keys == [
        "buttress:svc:breaker:{payments}",
        "buttress:svc:breaker:{payments}:window",
        "buttress:svc:breaker:{search}",
        "buttress:svc:breaker:{search}:buckets",
    ]
    assert all(client.pttl(key) > 0 for key in keys)
    client.close()


def test_redis_stopped_mid_run_changes_nothing_the_caller_sees(redis_server: RedisServer) -> None:
    clock = FakeClock()
    registry = Registry()
    breaker = shared(redis_server, clock=clock, events=registry)
    with registry.capture() as events:
        assert breaker.call(lambda: "before") == "before"
        redis_server.stop()
        assert breaker.call(lambda: "during") == "during"  # local decision
        failures(breaker, 2)  # the original exception, unchanged
        assert breaker.call(lambda: "still") == "still"
        redis_server.start()  # an empty server, as after a crash
        assert breaker.call(lambda: "local until the retry") == "local until the retry"
        clock.advance(5)  # the store's retry interval
        assert breaker.call(lambda: "after") == "after"
        failures(breaker, 3)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)
    store_events = [e for e in events if isinstance(e, StoreUnavailable | StoreRecovered)]
    assert store_events == [
        StoreUnavailable("payments", "redis", "ConnectionError"),
        StoreRecovered("payments", "redis"),
    ]


def test_local_fallback_trips_on_its_own(redis_server: RedisServer) -> None:
    breaker = shared(redis_server)
    redis_server.stop()
    failures(breaker, 3)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: None)


def test_an_open_shared_breaker_stays_open_when_redis_goes_away(
    redis_server: RedisServer,
) -> None:
    registry = Registry()
    breaker = shared(redis_server, events=registry)
    failures(breaker, 3)
    redis_server.stop()
    with registry.capture() as events, pytest.raises(CircuitOpen):
        breaker.call(lambda: None)  # Redis is gone; the local state carries "open" over
    assert BreakerTransition("payments", "closed", "open", "store_unavailable") in events


async def test_async_calls_share_state_and_survive_an_outage(redis_server: RedisServer) -> None:
    clock = FakeClock()
    registry = Registry()
    first, second = shared(redis_server, clock=clock, events=registry), shared(redis_server)

    async def fail() -> None:
        raise Boom

    async def ok() -> str:
        return "ok"

    for breaker in (first, second, first):
        with pytest.raises(Boom):
            await breaker.call(fail)
    with pytest.raises(CircuitOpen):
        await second.call(ok)
    second.reset()
    async with first:
        pass
    with registry.capture() as events:
        redis_server.stop()
        assert await first.call(ok) == "ok"
        redis_server.start()
        clock.advance(5)
        assert await first.call(ok) == "ok"
    assert [type(e) for e in events if not isinstance(e, BreakerTransition)][:1] == [
        StoreUnavailable
    ]
    assert StoreRecovered("payments", "redis") in events


async def test_concurrent_tasks_never_exceed_shared_half_open_permits(
    redis_server: RedisServer,
) -> None:
    breaker = shared(redis_server, half_open_permits=3)
    failures(breaker, 3)
    end_open_period(redis_server, breaker._backend._store)  # type: ignore[attr-defined]
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

    tasks = [asyncio.create_task(work()) for _ in range(200)]
    for _ in range(2_000):  # bounded: until every refusal is back from Redis
        if sum(t.done() for t in tasks) >= 200 - 3:
            break
        await asyncio.sleep(0.001)
    assert admitted == 3
    release.set()
    assert sum(await asyncio.gather(*tasks)) == 3
    assert state(breaker) == "closed"


def test_bad_store_configuration() -> None:
    with pytest.raises(ConfigurationError, match="url"):
        RedisStore("http://localhost")
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisStore(socket_timeout=0)
    with pytest.raises(ConfigurationError, match="service"):
        RedisStore(service="")


def test_no_outcome_is_lost_from_the_shared_window_across_64_threads(
    redis_server: RedisServer,
) -> None:
    breakers = [
        shared(
            redis_server,
            consecutive_failures=None,
            failure_rate=1.0,
            window=100_000,
            minimum_calls=100_000,
        )
        for _ in range(2)
    ]
    start_line = threading.Barrier(64)

    def work(n: int) -> None:
        breaker = breakers[n % 2]  # two replicas, 32 threads each
        start_line.wait(10)
        for i in range(10):
            try:
                with breaker:
                    if i % 2:
                        raise Boom
            except Boom:
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    counts = client.hmget(breakers[0]._backend._store.key("breaker", "payments"), "wc", "wf")  # type: ignore[attr-defined]
    client.close()
    assert counts == ["640", "320"]
