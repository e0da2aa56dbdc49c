"""Every panel of the jobs dashboard, and the job SLO rules, return data from a real Prometheus.

Real consumers (Redis Streams consumer groups on a real redis-server, a run-once consumer)
process messages in a thread, bounded in rounds; a real Prometheus scrapes their registry
every second with job SLO rules loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, make_asgi_app

import buttress.dashboards
from buttress.jobs import (
    Consumer,
    InMemoryIdempotency,
    RedisStreamConsumer,
    dead_letter_to_stream,
    publish_to_stream,
)
from buttress.slo import SLO, slo_rules

from .._services import RedisServer, require_binary
from ._live import Prometheus, serve
from .test_live import _dashboard_failures, _eventually

pytestmark = [pytest.mark.prometheus, pytest.mark.redis, pytest.mark.slow]

JOB = "worker"
ROUNDS = 400  # at 0.1 s a round: the traffic stops itself after about 40 s
SLOS = [
    SLO("orders", service=JOB, objective=0.99, signal="jobs", destinations=["orders"]),
    SLO("latency", service=JOB, objective=0.99, threshold=0.5, signal="jobs"),
]


def _work(client: redis.Redis, registry: CollectorRegistry, stop: threading.Event) -> None:
    def consumer(destination: str, **options: Any) -> Consumer:
        return Consumer(destination, system="redis", metrics_registry=registry, **options)

    orders = consumer(
        "orders",
        consumer_group="billing",
        max_deliveries=2,
        dead_letter=dead_letter_to_stream(client, "orders:dead"),
    )
    first = RedisStreamConsumer(
        client, stream="orders", group="billing", name="a", consumer=orders, block=0.01
    )
    second = RedisStreamConsumer(
        client, stream="orders", group="billing", name="b", consumer=orders, claim_idle=0.0
    )
    audit = RedisStreamConsumer(
        client, stream="audit", group="archive", name="a", consumer=consumer("audit")
    )
    for member in (first, audit):
        member.ensure_group()
    emails = consumer("emails", idempotency=InMemoryIdempotency(), non_retryable=ValueError)

    def handle(fields: dict[str, Any]) -> None:
        if fields["order"] == "poison":
            raise OSError("cannot be processed")

    def send(message: int) -> None:
        if message % 7 == 0:
            raise ValueError("malformed")

    for round_ in range(ROUNDS):
        if stop.wait(0.1):
            return
        publish_to_stream(client, "orders", {"order": str(round_)})
        if round_ % 5 == 0:
            publish_to_stream(client, "orders", {"order": "poison"})
        publish_to_stream(client, "audit", {"entry": str(round_)})  # nobody reads: lag
        first.poll(handle, block=False)
        second.poll(handle, block=False)
        audit.measure()
        for _ in range(2):  # every message twice: the second is a duplicate
            emails.process(send, round_, message_id=str(round_))


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    prometheus_binary = require_binary("prometheus")
    redis_binary = require_binary("redis-server")
    registry = CollectorRegistry()
    stop = threading.Event()
    with RedisServer(redis_binary) as server, serve(make_asgi_app(registry=registry)) as port:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        worker = threading.Thread(target=_work, args=(client, registry, stop), daemon=True)
        worker.start()
        try:
            with Prometheus(
                prometheus_binary, job=JOB, target_port=port, rules=slo_rules(SLOS)
            ) as started:
                yield started
        finally:
            stop.set()
            worker.join(timeout=10)
            client.close()


def test_every_jobs_panel_returns_data(prometheus: Prometheus) -> None:
    import time

    dashboard = buttress.dashboards.load("buttress-jobs")
    deadline = time.monotonic() + 45.0
    failures = _eventually(lambda: _dashboard_failures(prometheus, dashboard, {}), deadline)
    assert failures == []


def test_job_slo_rules_return_data(prometheus: Prometheus) -> None:
    import time

    deadline = time.monotonic() + 45.0

    def missing() -> list[str]:
        return [
            slo.name
            for slo in SLOS
            if not prometheus.query(f'slo:sli_error:ratio_rate5m{{sloth_slo="{slo.name}"}}')
        ]

    assert _eventually(missing, deadline) == []
