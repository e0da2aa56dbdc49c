"""A token bucket shared through a real redis-server, and what happens when it goes away."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis

from buttress import RateLimited, RateLimiter, RedisStore
from buttress._events import RateLimitWaited, Registry, StoreRecovered, StoreUnavailable
from buttress.testing import FakeClock

from .._services import RedisServer

pytestmark = pytest.mark.redis

# A generous timeout: on a loaded CI machine a live Redis may answer slowly, and a
# timeout would (correctly) switch to local state and muddle what these tests check.
# A stopped server refuses connections at once, whatever the timeout.
LOADED = 5.0


def limiter(server: RedisServer, clock: FakeClock | None = None, **kwargs: object) -> RateLimiter:
    options: dict[str, object] = {"rate": 1, "per": 3600, "burst": 5}
    options.update(kwargs)
    store = RedisStore(server.url, service="svc", socket_timeout=LOADED, clock=clock or FakeClock())
    return RateLimiter("search", store=store, **options)  # type: ignore[arg-type]


def grants(limiter: RateLimiter, attempts: int) -> int:
    granted = 0
    for _ in range(attempts):
        try:
            limiter.acquire()
            granted += 1
        except RateLimited:
            pass
    return granted


def test_replicas_share_one_bucket(redis_server: RedisServer) -> None:
    first, second = limiter(redis_server), limiter(redis_server)
    assert grants(first, 3) + grants(second, 10) == 5  # the burst, shared
    with pytest.raises(RateLimited) as info:
        first.acquire()
    assert 3590 < info.value.retry_after <= 3600  # one token an hour
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.keys("*") == ["buttress:svc:ratelimit:{search}"]
    assert client.pttl("buttress:svc:ratelimit:{search}") > 0
    client.close()


def test_waiting_reserves_tokens_in_redis(redis_server: RedisServer) -> None:
    registry = Registry()
    shared = limiter(redis_server, rate=1000, per=1, burst=1, max_wait=1.0, events=registry)
    with registry.capture() as events:
        for _ in range(3):
            shared.acquire()  # the 2nd and 3rd wait up to a millisecond each
    waits = [e.wait for e in events if isinstance(e, RateLimitWaited)]
    assert waits
    assert all(0 < wait <= 0.002 for wait in waits)


async def test_async_tasks_share_the_bucket(redis_server: RedisServer) -> None:
    shared = limiter(redis_server)

    async def ok() -> None:
        return None

    results = await asyncio.gather(*(shared.call(ok) for _ in range(50)), return_exceptions=True)
    assert sum(r is None for r in results) == 5
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


def test_redis_outage_falls_back_to_a_local_bucket(redis_server: RedisServer) -> None:
    clock = FakeClock()
    registry = Registry()
    shared = limiter(redis_server, clock=clock, events=registry)
    with registry.capture() as events:
        assert grants(shared, 2) == 2
        redis_server.stop()
        assert grants(shared, 10) == 5  # the local bucket's own burst
        redis_server.start()
        clock.advance(5)
        assert grants(shared, 10) == 5  # a fresh server: a full shared bucket again
    assert events[0] == StoreUnavailable("search", "redis", "ConnectionError")
    assert StoreRecovered("search", "redis") in events


async def test_async_outage(redis_server: RedisServer) -> None:
    shared = limiter(redis_server)
    redis_server.stop()

    async def ok() -> str:
        return "ok"

    assert await shared.call(ok) == "ok"


def test_a_shared_bucket_never_grants_more_than_its_burst_across_64_threads(
    redis_server: RedisServer,
) -> None:
    replicas = [limiter(redis_server, burst=20) for _ in range(2)]  # one token an hour
    granted = 0
    lock = threading.Lock()
    start_line = threading.Barrier(64)

    def work(n: int) -> None:
        nonlocal granted
        start_line.wait(10)
        mine = grants(replicas[n % 2], 5)
        with lock:
            granted += mine

    threads = [threading.Thread(target=work, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert granted == 20
