"""Celery through its signals, with real workers on a real redis-server broker.

One worker serves the whole module (started once); the crash test starts and kills its
own. Every wait is bounded and polls a condition.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from buttress import bound_correlation_id
from buttress import names as n
from buttress.deadline import deadline_scope
from buttress.jobs import instrument_celery
from tests._services import RedisServer

from . import celery_app
from ._spans import LocalSpans
from ._workers import Worker, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def broker(redis_binary: str) -> Iterator[RedisServer]:
    with RedisServer(redis_binary) as server:
        yield server


@pytest.fixture(scope="module")
def client(broker: RedisServer) -> Iterator[redis.Redis]:
    # The producer side, in this process: the test's app object points at this broker.
    celery_app.app.conf.broker_url = broker.url
    connection = redis.Redis.from_url(broker.url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def worker(broker: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    started = Worker(broker.url, tmp_path_factory.mktemp("celery"), "shared")
    yield started
    started.stop()


def test_a_task_carries_the_trace_request_id_and_deadline_to_the_worker(
    worker: Worker, client: redis.Redis, spans: LocalSpans
) -> None:
    key = f"effects:{uuid.uuid4().hex}"
    # The app's own instrumentation records into the global provider; this test's
    # producer spans go to its own (the app is instrumented again meanwhile).
    celery_app.instrumentation.uninstrument()
    producer = instrument_celery(celery_app.app, tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("test")
    try:
        with (
            tracer.start_as_current_span("request") as request,
            bound_correlation_id("req-celery-1"),
            deadline_scope(20.0),
        ):
            task = celery_app.record.apply_async(args=[key])
    finally:
        producer.uninstrument()
        celery_app.instrumentation = instrument_celery(
            celery_app.app, trusted_producers="any", dead_letter=celery_app.dead_letter
        )
    trace_id = format(request.get_span_context().trace_id, "032x")
    [send] = spans.named("send jobs.record")
    assert send.attributes is not None
    assert send.attributes[n.ATTR_MESSAGING_MESSAGE_ID] == task.id
    wait_until(lambda: client.llen(key) == 1, what="the task to run")
    [line] = wait_until(
        lambda: [x for x in worker.lines(n.EVENT_MESSAGE) if x["message_id"] == task.id],
        what="the worker's log line",
    )
    assert line[n.LOG_KEY_REQUEST_ID] == "req-celery-1"
    assert line[n.LOG_KEY_TRACE_ID] == trace_id
    assert line[n.LABEL_OUTCOME] == n.JOB_SUCCESS
    assert line[n.LOG_KEY_DESTINATION] == "jobs.record"
    assert line[n.LOG_KEY_DELIVERY] == 1
    labels = {n.LABEL_MESSAGING_DESTINATION: "jobs.record", n.LABEL_OUTCOME: n.JOB_SUCCESS}
    assert worker.metric(n.MESSAGING_PROCESS_DURATION + "_count", **labels) >= 1


def test_the_same_message_twice_has_its_side_effect_once(
    worker: Worker, client: redis.Redis
) -> None:
    key = f"effects:{uuid.uuid4().hex}"
    task_id = f"dup-{uuid.uuid4().hex}"
    celery_app.record.apply_async(args=[key], task_id=task_id)
    celery_app.record.apply_async(args=[key], task_id=task_id)
    wait_until(
        lambda: len([x for x in worker.lines(n.EVENT_MESSAGE) if x["message_id"] == task_id]) == 2,
        what="both deliveries",
    )
    assert client.lrange(key, 0, -1) == [task_id]
    labels = {n.LABEL_MESSAGING_DESTINATION: "jobs"}
    assert worker.metric(n.IDEMPOTENCY_CHECKS, outcome=n.IDEMPOTENCY_DUPLICATE, **labels) >= 1


def test_a_poison_message_is_dead_lettered_after_three_attempts_while_others_flow(
    worker: Worker, client: redis.Redis
) -> None:
    key = f"effects:{uuid.uuid4().hex}"
    client.delete(celery_app.DEAD_LETTERS, "jobs:poison:attempts")
    poisoned = celery_app.poison.delay()
    for _ in range(5):
        celery_app.record.delay(key)
    letters = wait_until(lambda: client.lrange(celery_app.DEAD_LETTERS, 0, -1), what="a letter")
    wait_until(lambda: client.llen(key) == 5, what="the other tasks")
    [letter] = [json.loads(x) for x in letters]
    assert letter == {
        "task": "jobs.poison",
        "id": poisoned.id,
        "reason": n.DEAD_LETTER_MAX_DELIVERIES,
        "delivery": 3,
    }
    assert client.get("jobs:poison:attempts") == "3"
    # The letter is sent at task_failure; the delivery is recorded at task_postrun, after.
    wait_until(
        lambda: any(
            x["message_id"] == poisoned.id and x[n.LABEL_OUTCOME] == n.JOB_DEAD_LETTER
            for x in worker.lines(n.EVENT_MESSAGE)
        ),
        what="the dead-lettered delivery's log line",
    )
    outcomes = [x[n.LABEL_OUTCOME] for x in worker.lines(n.EVENT_MESSAGE)]
    assert outcomes.count(n.JOB_DEAD_LETTER) == 1
    dead = {n.LABEL_MESSAGING_DESTINATION: "jobs.poison", n.LABEL_REASON: "max_deliveries"}
    assert worker.metric(n.MESSAGES_DEAD_LETTERED, **dead) == 1
    retried = {n.LABEL_MESSAGING_DESTINATION: "jobs.poison"}
    assert worker.metric(n.MESSAGE_REDELIVERIES, **retried) == 2


def test_a_worker_killed_mid_task_loses_nothing_and_repeats_no_side_effect(
    redis_binary: str, tmp_path: Path
) -> None:
    with RedisServer(redis_binary) as server:
        connection = redis.Redis.from_url(server.url, decode_responses=True)
        env = {"JOBS_VISIBILITY": "2", "JOBS_LEASE": "1"}
        first = Worker(server.url, tmp_path, "first", **env)
        try:
            with celery_app.app.connection(server.url) as producer:
                task = celery_app.hold.apply_async(args=["held"], connection=producer)
            wait_until(lambda: connection.llen("held:started") == 1, what="the first run")
            first.kill()
        finally:
            first.stop()
        second = Worker(server.url, tmp_path, "second", **env)
        try:
            connection.set("held:release", "1")
            wait_until(lambda: connection.llen("held") >= 1, timeout=40, what="the redelivery")
            assert connection.lrange("held", 0, -1) == [task.id]
            lines = wait_until(
                lambda: [
                    x
                    for x in second.lines(n.EVENT_MESSAGE)
                    if x["message_id"] == task.id and x["outcome"] == n.JOB_SUCCESS
                ],
                what="the log line of the redelivery",
            )
            assert lines[-1][n.LOG_KEY_DELIVERY] >= 2
            redelivered = {n.LABEL_MESSAGING_DESTINATION: "jobs.hold"}
            assert second.metric(n.MESSAGE_REDELIVERIES, **redelivered) >= 1
            # The crashed run's claim did not block the redelivery: its lease ran out.
            taken = {n.LABEL_MESSAGING_DESTINATION: "jobs"}
            outcome = n.IDEMPOTENCY_TAKEN_OVER
            assert second.metric(n.IDEMPOTENCY_CHECKS, outcome=outcome, **taken) == 1
        finally:
            second.stop()
            connection.close()
