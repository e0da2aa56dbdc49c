"""``RedisStore(mode="batched")`` on a real redis-server and a real 3-master Redis Cluster.

Several stores play several replicas in one test; ``sync_thread=False`` and a FakeClock
make every exchange happen where the test says (``store.sync()``), so nothing sleeps.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from buttress import (
    CircuitBreaker,
    CircuitOpen,
    ConfigurationError,
    RateLimited,
    RateLimiter,
    RedisStore,
)
from buttress.events import BreakerTransition
from buttress.testing import FakeClock

from .._services import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

LOADED = 5.0
INTERVAL = 0.5
_names = itertools.count()


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


class Fleet:
    """Replicas (one store each) of one service, on one Redis, under one fake clock."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.clock = FakeClock()
        self.service = f"batched{next(_names)}"
        self.stores: list[RedisStore] = []
        self.clients: list[Any] = []
        self.kind = kind
        if kind == "redis":
            self.server: RedisServer = request.getfixturevalue("redis_server")
        else:
            self.cluster: RedisCluster = request.getfixturevalue("redis_cluster")

    def client(self) -> Any:
        if self.kind == "redis":
            return redis.Redis.from_url(self.server.url, socket_timeout=LOADED)
        nodes = [
            redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
            for h, p in self.cluster.startup_nodes
        ]
        return redis.cluster.RedisCluster(startup_nodes=nodes, socket_timeout=LOADED)

    def store(self, **options: Any) -> RedisStore:
        client = self.client()
        self.clients.append(client)
        store = RedisStore(
            client=client,
            service=self.service,
            mode="batched",
            sync_interval=INTERVAL,
            sync_thread=False,
            retry_interval=1.0,
            clock=self.clock,
            server_time=False,
            **options,
        )
        self.stores.append(store)
        return store

    def breakers(self, count: int, **options: Any) -> list[CircuitBreaker]:
        options.setdefault("reset_timeout", 10)
        return [
            CircuitBreaker("dep", store=self.store(), clock=self.clock, **options)
            for _ in range(count)
        ]

    def sync(self, seconds: float = INTERVAL) -> None:
        """Let ``seconds`` pass, then every replica takes its due exchange."""
        self.clock.advance(seconds)
        for store in self.stores:
            store.sync()

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for client in self.clients:
            client.close()


@pytest.fixture(params=["redis", "cluster"])
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    made = Fleet(request.param, request)
    yield made
    made.close()


@pytest.fixture
def solo(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """A fleet on one redis-server, which the test may read INFO of, stop and restart."""
    made = Fleet("redis", request)
    yield made
    made.close()


def calls(breaker: CircuitBreaker, outcomes: str) -> None:
    """``outcomes`` is a string of s (success) and f (failure)."""
    for outcome in outcomes:
        if outcome == "f":
            with pytest.raises(Boom):
                breaker.call(boom)
        else:
            breaker.call(lambda: None)


def admitted(breaker: CircuitBreaker) -> bool:
    try:
        breaker.call(lambda: None)
    except CircuitOpen:
        return False
    return True


def test_one_replicas_trip_reaches_the_others_within_one_interval(fleet: Fleet) -> None:
    first, second, third = fleet.breakers(3, consecutive_failures=3)
    fleet.sync()
    calls(first, "fff")
    assert first.state == "open"
    assert admitted(second)  # not told yet: decisions are local
    fleet.sync(INTERVAL * 0.2)  # the trip goes at once: a fifth of the interval later
    fleet.sync()
    assert [b.state for b in (first, second, third)] == ["open"] * 3
    with pytest.raises(CircuitOpen) as info:
        second.call(lambda: None)
    assert 8 < (info.value.retry_after or 0) <= 10


def test_the_fleets_failure_rate_opens_where_no_replica_alone_would(fleet: Fleet) -> None:
    replicas = fleet.breakers(2, failure_rate=0.5, minimum_calls=10)
    fleet.sync()
    for breaker in replicas:
        calls(breaker, "sfsfsf")  # 6 calls each: under minimum_calls locally
    assert [b.state for b in replicas] == ["closed", "closed"]
    fleet.sync()
    fleet.sync()
    assert [b.state for b in replicas] == ["open", "open"]


def test_half_open_trials_are_bounded_across_the_fleet(fleet: Fleet) -> None:
    replicas = fleet.breakers(3, consecutive_failures=1, half_open_permits=1)
    fleet.sync()
    calls(replicas[0], "f")
    fleet.sync()
    fleet.sync(10)
    assert not any(admitted(b) for b in replicas)  # the open period ended: permits asked
    fleet.sync(INTERVAL * 0.2)
    holders = [b for b in replicas if b._backend.core._permits]  # type: ignore[attr-defined]
    assert len(holders) == 1
    assert [b.state for b in replicas] == ["half_open"] * 3
    others = [b for b in replicas if b not in holders]
    assert not any(admitted(b) for b in others)
    assert admitted(holders[0])  # the one trial succeeds
    fleet.sync(INTERVAL * 0.2)
    fleet.sync()
    assert [b.state for b in replicas] == ["closed"] * 3


def test_a_failed_trial_opens_the_fleet_again(fleet: Fleet) -> None:
    replicas = fleet.breakers(2, consecutive_failures=1, reset_backoff=2)
    fleet.sync()
    calls(replicas[0], "f")
    fleet.sync()
    fleet.sync(10)
    for breaker in replicas:
        admitted(breaker)
    fleet.sync(INTERVAL * 0.2)
    holder = next(b for b in replicas if b._backend.core._permits)  # type: ignore[attr-defined]
    calls(holder, "f")
    assert holder.state == "open"
    fleet.sync(INTERVAL * 0.2)
    fleet.sync()
    assert [b.state for b in replicas] == ["open", "open"]
    assert 19 < (replicas[1].time_until_half_open or 0) <= 20  # 10 s x reset_backoff


def test_force_open_and_reset_reach_every_replica_at_their_next_exchange(fleet: Fleet) -> None:
    first, second = fleet.breakers(2)
    fleet.sync()
    first.force_open()
    assert first.state == "forced_open"
    fleet.sync()
    assert second.state == "forced_open"
    second.reset()
    fleet.sync()
    assert [first.state, second.state] == ["closed", "closed"]


def test_transitions_are_announced_by_each_replica_with_the_fleets_reason(fleet: Fleet) -> None:
    seen: list[tuple[int, str, str]] = []
    replicas = []
    for index in range(2):

        def moved(event: BreakerTransition, index: int = index) -> None:
            seen.append((index, event.new, event.reason))

        replicas.append(
            CircuitBreaker(
                "dep",
                failure_rate=0.5,
                minimum_calls=4,
                store=fleet.store(),
                clock=fleet.clock,
                on_transition=moved,
            )
        )
    fleet.sync()
    calls(replicas[0], "sf")
    calls(replicas[1], "sf")
    fleet.sync()
    fleet.sync()
    assert sorted(seen) == [(0, "open", "failure_rate"), (1, "open", "failure_rate")]


def test_redis_work_does_not_grow_with_the_call_rate(solo: Fleet) -> None:
    (breaker,) = solo.breakers(1, failure_rate=0.9)
    limiter = RateLimiter("lim", rate=100_000, store=solo.stores[0], clock=solo.clock)
    watcher = redis.Redis.from_url(solo.server.url)

    def commands_for(count: int) -> int:
        before = int(watcher.info("stats")["total_commands_processed"])
        for _ in range(count):
            # The lease follows demand: refusals past a spent lease are part of the load.
            with contextlib.suppress(RateLimited):
                limiter.acquire()
            breaker.call(lambda: None)
        solo.sync()
        solo.sync()
        return int(watcher.info("stats")["total_commands_processed"]) - before

    solo.sync()
    solo.sync()
    assert commands_for(10) == commands_for(5000)
    watcher.close()


def test_an_open_breaker_stays_open_after_redis_restarts_empty(solo: Fleet) -> None:
    first, second = solo.breakers(2, consecutive_failures=1, reset_timeout=60)
    solo.sync()
    calls(first, "f")
    solo.sync()
    solo.sync()
    assert second.state == "open"
    solo.server.stop()
    solo.sync()  # the exchange fails: each replica decides alone, still open
    assert [first.state, second.state] == ["open", "open"]
    assert not admitted(second)
    solo.server.start()  # empty
    solo.sync(1.0)  # past retry_interval: Redis is tried again and rebuilt
    client = redis.Redis.from_url(solo.server.url)
    fleet_key = f"{solo.stores[0].key('breaker', 'dep')}:fleet"
    assert int(client.hget(fleet_key, "st") or -1) == 1  # open, from the replicas' views
    client.close()
    # A replica that starts now learns the open state from Redis, not from its own past.
    (late,) = solo.breakers(1, consecutive_failures=1, reset_timeout=60)
    solo.sync()
    assert late.state == "open"


def test_leases_keep_the_fleets_rate_within_the_bucket(fleet: Fleet) -> None:
    limiters = [
        RateLimiter("api", rate=100, burst=100, store=fleet.store(), clock=fleet.clock)
        for _ in range(3)
    ]
    fleet.sync()
    passed = 0
    for _ in range(40):  # 10 s, every replica calling far beyond the rate
        for limiter in limiters:
            for _ in range(60):
                try:
                    limiter.acquire()
                    passed += 1
                except RateLimited:
                    pass
        fleet.sync(0.25)
    # The bucket's bound (burst + rate x time), and close to it: tokens wait in the bucket.
    assert 0.9 * (100 + 100 * 10) <= passed <= 100 + 100 * 10


def test_an_empty_restart_hands_out_no_fresh_burst(solo: Fleet) -> None:
    limiter = RateLimiter("api", rate=10, burst=10, store=solo.store(), clock=solo.clock)
    solo.sync()
    solo.sync()
    solo.server.stop()
    solo.server.start()
    solo.sync(0.01)
    core = limiter._backend.core  # type: ignore[attr-defined]
    core.tokens = 0
    core.urgent = True
    solo.sync()
    assert core.connected
    assert core.tokens <= 5  # what half a second refills, not a full bucket of 10


def test_batched_needs_a_sync_client(fleet: Fleet) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis()
    with pytest.raises(ConfigurationError, match="sync client"):
        RedisStore(client=client, mode="batched")
    with pytest.raises(ConfigurationError, match="mode"):
        RedisStore(mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="client must be"):
        RedisStore(client="redis://127.0.0.1")
    with pytest.raises(ConfigurationError, match="not both"):
        RedisStore("redis://127.0.0.1", client=fleet.client())


async def test_async_calls_decide_on_the_replicas_view(fleet: Fleet) -> None:
    first, second = fleet.breakers(2, consecutive_failures=2)
    fleet.sync()

    async def failing() -> None:
        raise Boom

    for _ in range(2):
        with pytest.raises(Boom):
            async with first:
                await failing()
    with pytest.raises(CircuitOpen):
        await first.call(failing)
    fleet.sync(INTERVAL * 0.2)
    fleet.sync()
    with pytest.raises(CircuitOpen):
        async with second:
            pass


def test_a_replica_that_knew_nothing_cannot_close_a_lost_open_breaker(solo: Fleet) -> None:
    first, second = solo.breakers(2, consecutive_failures=1, reset_timeout=60)
    solo.sync()
    calls(first, "f")
    solo.sync(INTERVAL * 0.2)
    solo.sync()
    solo.server.stop()
    solo.server.start()  # empty
    (late,) = solo.breakers(1, consecutive_failures=1, reset_timeout=60)
    late._backend.exchange()  # type: ignore[attr-defined]  # it reaches Redis first
    assert late.state == "closed"
    solo.sync(1.0)  # the others reach it, past retry_interval
    solo.sync()
    assert [first.state, second.state, late.state] == ["open", "open", "open"]
