"""Redis Streams consumer groups on a real redis-server: claims, dead letters, lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from buttress import bound_correlation_id, get_correlation_id
from buttress import names as n
from buttress.jobs import (
    Consumer,
    RedisStreamConsumer,
    dead_letter_to_stream,
    publish_to_stream,
)
from buttress.testing import CapturedMetrics, capture_metrics
from tests._services import RedisServer

from ._spans import LocalSpans

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def metrics() -> Iterator[CapturedMetrics]:
    with capture_metrics() as captured:
        yield captured


def _member(
    client: redis.Redis, name: str, spans: LocalSpans | None = None, **options: Any
) -> RedisStreamConsumer:
    consumer = Consumer(
        "orders",
        system="redis",
        consumer_group="billing",
        trusted_producers="any",
        max_deliveries=options.pop("max_deliveries", 5),
        dead_letter=dead_letter_to_stream(client, "orders:dead"),
        tracer_provider=None if spans is None else spans.provider,
    )
    member = RedisStreamConsumer(
        client, stream="orders", group="billing", name=name, consumer=consumer, **options
    )
    member.ensure_group()
    return member


def test_a_published_message_is_processed_with_its_context_and_acknowledged(
    client: redis.Redis, metrics: CapturedMetrics, spans: LocalSpans
) -> None:
    member = _member(client, "a", spans)
    member.ensure_group()  # a second call finds the group and leaves it
    tracer = spans.provider.get_tracer("t")
    with tracer.start_as_current_span("producer"), bound_correlation_id("req-stream"):
        publish_to_stream(client, "orders", {"order": "17"})
    seen: list[tuple[str, str | None]] = []
    assert member.poll(lambda f: seen.append((f["order"], get_correlation_id()))) == 1
    assert seen == [("17", "req-stream")]
    [span] = spans.named("process orders")
    assert span.attributes is not None
    assert span.attributes[n.ATTR_MESSAGING_CONSUMER_GROUP] == "billing"
    assert client.xpending("orders", "billing")["pending"] == 0


def test_lag_and_pending_are_gauges(client: redis.Redis, metrics: CapturedMetrics) -> None:
    member = _member(client, "a", batch=2)
    for i in range(5):
        publish_to_stream(client, "orders", {"order": str(i)})
    assert member.measure() == (5, 0)
    labels = {n.LABEL_CONSUMER_GROUP: "billing", n.LABEL_MESSAGING_DESTINATION: "orders"}
    assert metrics.value(n.CONSUMER_LAG, **labels) == 5
    member.poll(lambda f: None)
    assert metrics.value(n.CONSUMER_LAG, **labels) == 3
    assert metrics.value(n.CONSUMER_PENDING, **labels) == 0


def test_a_message_left_by_a_failed_member_is_claimed_by_another(
    client: redis.Redis, metrics: CapturedMetrics
) -> None:
    crashed = _member(client, "crashed")
    survivor = _member(client, "survivor", claim_idle=0.0)
    publish_to_stream(client, "orders", {"order": "1"})

    def fail(fields: dict[str, Any]) -> None:
        raise OSError("the member fails before it acknowledges")

    assert crashed.poll(fail) == 1
    assert crashed.measure() == (0, 1)  # still pending: not lost
    done: list[str] = []
    assert survivor.poll(lambda f: done.append(f["order"]), block=False) == 1
    assert done == ["1"]
    assert survivor.measure() == (0, 0)
    labels = {n.LABEL_CONSUMER_GROUP: "billing"}
    assert metrics.value(n.MESSAGES_CLAIMED, **labels) == 1
    assert metrics.value(n.MESSAGE_REDELIVERIES, messaging_destination_name="orders") == 1


def test_a_poison_message_is_dead_lettered_after_max_deliveries_while_others_flow(
    client: redis.Redis, metrics: CapturedMetrics
) -> None:
    member = _member(client, "a", claim_idle=0.0, max_deliveries=3)
    publish_to_stream(client, "orders", {"order": "poison"})
    for i in range(3):
        publish_to_stream(client, "orders", {"order": str(i)})
    done: list[str] = []

    def handle(fields: dict[str, Any]) -> None:
        if fields["order"] == "poison":
            raise ValueError("cannot parse")
        done.append(fields["order"])

    for _ in range(10):  # bounded: each poll claims the poison message or reads the rest
        member.poll(handle, block=False)
        if client.xlen("orders:dead") and len(done) == 3:
            break
    assert sorted(done) == ["0", "1", "2"]
    entries: list[tuple[str, dict[str, str]]] = client.xrange("orders:dead")  # type: ignore[assignment]
    [(_, letter)] = entries
    assert letter["order"] == "poison"
    assert letter["buttress.dead_letter.reason"] == n.DEAD_LETTER_MAX_DELIVERIES
    assert letter["buttress.dead_letter.delivery"] == "3"
    assert letter["buttress.dead_letter.error_type"] == "ValueError"
    assert member.measure() == (0, 0)
    assert metrics.value(n.MESSAGES_DEAD_LETTERED, reason=n.DEAD_LETTER_MAX_DELIVERIES) == 1


async def test_async_twin_claims_and_acknowledges(
    redis_server: RedisServer, metrics: CapturedMetrics
) -> None:
    import redis.asyncio

    from buttress.jobs import AsyncRedisStreamConsumer

    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        consumer = Consumer("orders", system="redis", consumer_group="billing")
        members = [
            AsyncRedisStreamConsumer(
                client, stream="orders", group="billing", name=name, consumer=consumer,
                claim_idle=idle,
            )
            for name, idle in (("first", 60.0), ("second", 0.0))
        ]  # fmt: skip
        await members[0].ensure_group()
        await members[0].ensure_group()
        await client.xadd("orders", {"order": "1"})

        async def fail(fields: dict[str, Any]) -> None:
            raise OSError("left pending")

        done: list[str] = []

        async def handle(fields: dict[str, Any]) -> None:
            done.append(fields["order"])

        assert await members[0].poll(fail, block=False) == 1
        assert await members[1].poll(handle, block=False) == 1
        assert done == ["1"]
        assert await members[1].measure() == (0, 0)
        assert metrics.value(n.MESSAGES_CLAIMED, messaging_consumer_group_name="billing") == 1
    finally:
        await client.aclose()
