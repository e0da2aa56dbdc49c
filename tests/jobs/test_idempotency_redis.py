"""Run-once claims in a real redis-server: atomic across workers, leases, TTLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from buttress import ConfigurationError
from buttress import names as n
from buttress.jobs import AsyncRedisIdempotency, Consumer, Idempotent, RedisIdempotency
from buttress.testing import capture_metrics
from tests._services import RedisServer

from ._workers import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def test_one_claim_wins_among_racing_workers(client: redis.Redis) -> None:
    stores = [RedisIdempotency(client) for _ in range(8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def race(store: RedisIdempotency, token: str) -> None:
        barrier.wait()
        outcomes.append(store.claim("k", token))

    threads = [threading.Thread(target=race, args=(s, str(i))) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["first"] + ["in_progress"] * 7


def test_a_crashed_run_blocks_only_until_its_lease_ends(client: redis.Redis) -> None:
    store = RedisIdempotency(client, ttl=60.0, lease=0.2)
    assert store.claim("k", "crashed") == "first"
    assert store.claim("k", "other") == "in_progress"
    # Redis's own clock decides; poll (bounded) until the lease has run out.
    assert wait_until(lambda: store.claim("k", "other") == "taken_over", timeout=5)
    store.release("k", "crashed")  # the crashed run's token no longer holds the claim
    store.complete("k", "other")
    assert store.claim("k", "late") == "duplicate"
    assert 0 < client.pttl("k") <= 60_000


def test_a_released_claim_runs_again(client: redis.Redis) -> None:
    store = RedisIdempotency(client)
    assert store.claim("k", "a") == "first"
    store.release("k", "a")
    assert store.claim("k", "b") == "first"


def test_consumer_and_guard_count_outcomes(client: redis.Redis) -> None:
    store = RedisIdempotency(client)
    effects: list[str] = []
    with capture_metrics() as metrics:
        consumer = Consumer("payments", idempotency=store)
        for delivery in (1, 2):
            consumer.process(effects.append, "charge", message_id="m", delivery=delivery)
        guard = Idempotent(store, name="refunds")
        for _ in range(2):
            with guard.claim("r") as claim:
                if claim.run:
                    effects.append("refund")
    assert effects == ["charge", "refund"]
    for destination in ("payments", "refunds"):
        labels = {n.LABEL_MESSAGING_DESTINATION: destination}
        assert metrics.value(n.IDEMPOTENCY_CHECKS, outcome="first", **labels) == 1
        assert metrics.value(n.IDEMPOTENCY_CHECKS, outcome="duplicate", **labels) == 1


def test_a_guarded_block_that_raises_releases_its_claim(client: redis.Redis) -> None:
    guard = Idempotent(RedisIdempotency(client), name="refunds")
    with pytest.raises(OSError), guard.claim("r"):
        raise OSError("failed half-way")
    with guard.claim("r") as claim:
        assert claim.outcome == "first"


async def test_async_twin(redis_server: RedisServer) -> None:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        store = AsyncRedisIdempotency(connection)
        consumer = Consumer("payments", idempotency=store)
        effects: list[str] = []

        async def handler(message: str) -> None:
            effects.append(message)

        first = await consumer.process_async(handler, "x", message_id="m")
        again = await consumer.process_async(handler, "x", message_id="m")
        assert (first.outcome, again.outcome) == (n.JOB_SUCCESS, n.JOB_DUPLICATE)
        assert effects == ["x"]
    finally:
        await connection.aclose()


@pytest.mark.parametrize(("ttl", "lease"), [(0, 1), (10, 0), (10, 20)])
def test_bad_durations_are_refused(client: redis.Redis, ttl: float, lease: float) -> None:
    with pytest.raises(ConfigurationError, match=r"ttl|lease"):
        RedisIdempotency(client, ttl=ttl, lease=lease)
