"""The Celery app of the jobs tests: its workers run under ``celery -A tests.jobs.celery_app``.

Configured from the environment the test sets: ``JOBS_BROKER`` (a real redis-server the
test started), ``JOBS_VISIBILITY`` (seconds before an unacknowledged message is given to
another worker) and ``JOBS_LEASE`` (the idempotency lease). ``buttress.configure()`` runs
in the worker (JSON logs on stderr, spans over OTLP when ``OTEL_*`` says so) and the app is
instrumented in one line, as an application would.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import redis
from celery import Celery, signals

import buttress
from buttress.httpx import ResilientTransport
from buttress.jobs import DeadLetter, Idempotent, RedisIdempotency, instrument_celery

BROKER = os.environ.get("JOBS_BROKER", "redis://127.0.0.1:1/0")
VISIBILITY = float(os.environ.get("JOBS_VISIBILITY", "30"))
LEASE = float(os.environ.get("JOBS_LEASE", "10"))
DEAD_LETTERS = "jobs:dead-letters"

app = Celery("jobs-tests", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    broker_transport_options={
        "visibility_timeout": VISIBILITY,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
)
store = redis.Redis.from_url(BROKER)


def dead_letter(letter: DeadLetter) -> None:
    record: dict[str, object] = {
        "task": letter.destination,
        "id": letter.message_id,
        "reason": letter.reason,
        "delivery": letter.delivery,
    }
    store.rpush(DEAD_LETTERS, json.dumps(record))


instrumentation = instrument_celery(app, trusted_producers="any", dead_letter=dead_letter)
once = Idempotent(RedisIdempotency(store, ttl=600.0, lease=LEASE), name="jobs")


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _logging(**_: Any) -> None:
    buttress.configure(service="jobs-worker", log_format="json")


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _ready(sender: Any = None, **_: Any) -> None:
    store.set(f"jobs:ready:{os.getpid()}", "1", ex=600)


@app.task(name="jobs.record", bind=True)  # type: ignore[untyped-decorator]
def record(self: Any, key: str) -> None:
    """The side effect of the duplicate tests: one list entry per run that did the work."""
    with once.claim(self.request.id) as claim:
        if claim.run:
            store.rpush(key, self.request.id)


@app.task(name="jobs.hold", bind=True)  # type: ignore[untyped-decorator]
def hold(self: Any, key: str) -> None:
    """Claims, says it started, waits (bounded) to be released, then does the side effect."""
    with once.claim(self.request.id) as claim:
        if claim.outcome == "in_progress":
            raise self.retry(countdown=0.5, max_retries=60)
        if not claim.run:
            return
        store.rpush(f"{key}:started", os.getpid())
        deadline = time.monotonic() + 30.0
        while not store.exists(f"{key}:release") and time.monotonic() < deadline:
            time.sleep(0.05)
        store.rpush(key, self.request.id)


@app.task(  # type: ignore[untyped-decorator]
    name="jobs.poison",
    bind=True,
    autoretry_for=(OSError,),
    max_retries=2,
    default_retry_delay=0,
)
def poison(self: Any) -> None:
    """Always fails: three attempts, then the dead-letter path."""
    store.incr("jobs:poison:attempts")
    raise OSError("poison")


@app.task(name="jobs.call_upstream")  # type: ignore[untyped-decorator]
def call_upstream(url: str) -> int:
    """A job that calls another service through the resilient transport."""
    transport = ResilientTransport(internal_hosts=["127.0.0.1"])
    with httpx.Client(transport=transport) as client:
        return client.get(url).status_code
