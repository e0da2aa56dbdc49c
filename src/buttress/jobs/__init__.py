"""Background jobs and message consumers: the ids, traces, deadlines and metrics of requests.

Producers write the trace context, correlation id and remaining deadline into message
headers (:func:`inject`); consumers believe them only from trusted producers and process
each message under a consumer span, with RED metrics and a log line (:class:`Consumer`,
or :class:`MessageObserver` for a loop of one's own). Handlers get retries, a dead-letter
path and run-once claims (:class:`RedisIdempotency`). Integrations: Celery
(:func:`instrument_celery`) and Redis Streams consumer groups (:class:`RedisStreamConsumer`).
See docs/jobs.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._consumer import Claim, Consumer, DeadLetter, Idempotent, Result
from ._headers import Headers, MessageContext, extract, inject
from ._idempotency import (
    AsyncIdempotencyStore,
    AsyncRedisIdempotency,
    IdempotencyStore,
    InMemoryIdempotency,
    RedisIdempotency,
)
from ._observer import MessageObserver, Observed

if TYPE_CHECKING:
    from ._celery import CeleryInstrumentation, instrument_celery
    from ._streams import (
        AsyncRedisStreamConsumer,
        RedisStreamConsumer,
        dead_letter_to_stream,
        publish_to_stream,
    )

__all__ = [
    "AsyncIdempotencyStore",
    "AsyncRedisIdempotency",
    "AsyncRedisStreamConsumer",
    "CeleryInstrumentation",
    "Claim",
    "Consumer",
    "DeadLetter",
    "Headers",
    "IdempotencyStore",
    "Idempotent",
    "InMemoryIdempotency",
    "MessageContext",
    "MessageObserver",
    "Observed",
    "RedisIdempotency",
    "RedisStreamConsumer",
    "Result",
    "dead_letter_to_stream",
    "extract",
    "inject",
    "instrument_celery",
    "publish_to_stream",
]


def __getattr__(name: str) -> Any:
    # Loaded on first access: importing buttress.jobs costs neither Celery nor redis.
    if name in ("CeleryInstrumentation", "instrument_celery"):
        from . import _celery

        return getattr(_celery, name)
    if name in (
        "AsyncRedisStreamConsumer",
        "RedisStreamConsumer",
        "dead_letter_to_stream",
        "publish_to_stream",
    ):
        from . import _streams

        return getattr(_streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
