"""Redis Streams consumer groups: new messages, stuck ones claimed, lag as a metric.

:class:`RedisStreamConsumer` is one member of a consumer group. Each :meth:`poll` first
claims messages that other members (or this one) left pending longer than ``claim_idle``
(``XAUTOCLAIM``: a crashed worker's messages are not lost), then reads new ones
(``XREADGROUP``), runs each through a :class:`Consumer` (spans, ids, retries, dead letters,
run-once claims) and acknowledges those whose result says so. A message whose handler
failed stays pending and comes back, claimed, with its delivery count from ``XPENDING``.
The group's lag and pending count are gauges, refreshed at every poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._args import check_name, seconds
from .._errors import ConfigurationError
from ._consumer import Consumer, DeadLetter
from ._headers import inject

if TYPE_CHECKING:
    from datetime import timedelta

    from .._trust import TrustedPeers

__all__ = [
    "AsyncRedisStreamConsumer",
    "RedisStreamConsumer",
    "dead_letter_to_stream",
    "publish_to_stream",
]

_SYSTEM = "redis"


def publish_to_stream(
    client: Any,
    stream: str,
    fields: Mapping[str, str | bytes | int | float],
    *,
    maxlen: int | None = None,
    present: TrustedPeers | None = None,
) -> Any:
    """``XADD`` ``fields`` with the trace context, correlation id and deadline beside them."""
    headers = inject({}, present=present)
    entry: dict[Any, Any] = {**fields, **headers}
    return client.xadd(stream, entry, maxlen=maxlen, approximate=maxlen is not None)


def dead_letter_to_stream(client: Any, stream: str) -> Callable[[DeadLetter], None]:
    """A ``dead_letter`` callable that appends the message and why to another stream."""

    def send(letter: DeadLetter) -> None:
        fields: dict[Any, Any] = dict(letter.message) if isinstance(letter.message, Mapping) else {}
        fields["buttress.dead_letter.reason"] = letter.reason
        fields["buttress.dead_letter.delivery"] = letter.delivery
        fields["buttress.dead_letter.message_id"] = letter.message_id or ""
        if letter.error is not None:
            fields["buttress.dead_letter.error_type"] = type(letter.error).__name__
        client.xadd(stream, fields)

    return send


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(fields: Mapping[Any, Any]) -> dict[str, Any]:
    return {_text(key): value for key, value in fields.items()}


class _Member:
    """What the sync and async members share: options, and the bookkeeping of replies."""

    __slots__ = ("_batch", "_block", "_client", "_consumer", "_idle", "group", "name", "stream")

    def __init__(
        self,
        client: Any,
        *,
        stream: str,
        group: str,
        name: str,
        consumer: Consumer,
        claim_idle: float | timedelta = 60.0,
        batch: int = 10,
        block: float | timedelta = 1.0,
    ) -> None:
        self._client = client
        self.stream = check_name(stream, "stream")
        self.group = check_name(group, "group")
        self.name = check_name(name, "name")
        if not isinstance(consumer, Consumer):
            raise ConfigurationError(f"consumer must be a buttress.jobs.Consumer, got {consumer!r}")
        self._consumer = consumer
        self._idle = int(seconds(claim_idle, "claim_idle") * 1000)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10_000:
            raise ConfigurationError(f"batch must be an int from 1 to 10000, got {batch!r}")
        self._batch = batch
        self._block = int(seconds(block, "block") * 1000)

    def _count_claimed(self, claimed: int) -> None:
        if claimed:
            metrics = self._consumer.observer.metrics
            metrics.claimed.child(_SYSTEM, self._consumer.destination, self.group).inc(claimed)

    def _gauges(self, groups: Any) -> tuple[int | None, int]:
        lag: int | None = None
        pending = 0
        for info in groups:
            info = _decoded(info)
            if _text(info.get("name")) == self.group:
                pending = int(info.get("pending") or 0)
                raw_lag = info.get("lag")
                lag = None if raw_lag is None else int(raw_lag)
        metrics = self._consumer.observer.metrics
        labels = (_SYSTEM, self._consumer.destination, self.group)
        metrics.pending.child(*labels).set(pending)
        if lag is not None:
            metrics.lag.child(*labels).set(lag)
        return lag, pending


def _delivery(detail: Any) -> int:
    # XAUTOCLAIM does not say how often a message was delivered; XPENDING does.
    return max(int(detail[0]["times_delivered"]) if detail else 2, 2)


class RedisStreamConsumer(_Member):
    """One member (``name``) of the consumer ``group`` on ``stream``, for a ``redis.Redis``.

    ``consumer`` does the processing; its destination names the stream in metrics and
    spans. ``claim_idle`` is how long a message may stay pending before any member takes
    it over: longer than a handler runs, or two members would work on it at once.
    :class:`AsyncRedisStreamConsumer` is the twin for ``redis.asyncio``.
    """

    __slots__ = ()

    def ensure_group(self, start: str = "0") -> None:
        """Create the group (and the stream) unless it exists; ``start`` is where it reads."""
        try:
            self._client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def poll(self, handler: Callable[[dict[str, Any]], object], *, block: bool = True) -> int:
        """Claim stuck messages, read new ones, process and acknowledge; how many were run.

        ``handler`` gets the message's fields (names decoded, values as the client gives
        them). ``block=False`` returns at once when nothing is waiting.
        """
        processed = 0
        for message_id, fields, delivery in self._claim():
            processed += self._run(handler, message_id, fields, delivery)
        if not processed:
            reply = self._client.xreadgroup(
                self.group,
                self.name,
                {self.stream: ">"},
                count=self._batch,
                block=self._block if block else None,
            )
            for _, messages in reply or ():
                for message_id, fields in messages:
                    processed += self._run(handler, message_id, fields, 1)
        self.measure()
        return processed

    def _claim(self) -> list[tuple[Any, Any, int]]:
        reply = self._client.xautoclaim(
            self.stream, self.group, self.name, self._idle, start_id="0-0", count=self._batch
        )
        claimed = []
        for message_id, fields in reply[1] if len(reply) > 1 else []:
            if fields is None:  # trimmed from the stream meanwhile: nothing left to run
                self._client.xack(self.stream, self.group, message_id)
                continue
            detail = self._client.xpending_range(
                self.stream, self.group, min=message_id, max=message_id, count=1
            )
            claimed.append((message_id, fields, _delivery(detail)))
        self._count_claimed(len(claimed))
        return claimed

    def _run(
        self,
        handler: Callable[[dict[str, Any]], object],
        message_id: Any,
        fields: Mapping[Any, Any],
        delivery: int,
    ) -> int:
        decoded = _decoded(fields)
        result = self._consumer.process(
            handler, decoded, headers=decoded, message_id=_text(message_id), delivery=delivery
        )
        if result.ack:
            self._client.xack(self.stream, self.group, message_id)
        return 1

    def measure(self) -> tuple[int | None, int]:
        """The group's lag (``None`` when Redis cannot tell) and pending count, as gauges."""
        return self._gauges(self._client.xinfo_groups(self.stream))


class AsyncRedisStreamConsumer(_Member):
    """:class:`RedisStreamConsumer` for a ``redis.asyncio.Redis``, with an async handler."""

    __slots__ = ()

    async def ensure_group(self, start: str = "0") -> None:
        """Create the group (and the stream) unless it exists; ``start`` is where it reads."""
        try:
            await self._client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def poll(
        self, handler: Callable[[dict[str, Any]], Awaitable[object]], *, block: bool = True
    ) -> int:
        """Claim stuck messages, read new ones, process and acknowledge; how many were run."""
        processed = 0
        for message_id, fields, delivery in await self._claim():
            processed += await self._run(handler, message_id, fields, delivery)
        if not processed:
            reply = await self._client.xreadgroup(
                self.group,
                self.name,
                {self.stream: ">"},
                count=self._batch,
                block=self._block if block else None,
            )
            for _, messages in reply or ():
                for message_id, fields in messages:
                    processed += await self._run(handler, message_id, fields, 1)
        await self.measure()
        return processed

    async def _claim(self) -> list[tuple[Any, Any, int]]:
        reply = await self._client.xautoclaim(
            self.stream, self.group, self.name, self._idle, start_id="0-0", count=self._batch
        )
        claimed = []
        for message_id, fields in reply[1] if len(reply) > 1 else []:
            if fields is None:
                await self._client.xack(self.stream, self.group, message_id)
                continue
            detail = await self._client.xpending_range(
                self.stream, self.group, min=message_id, max=message_id, count=1
            )
            claimed.append((message_id, fields, _delivery(detail)))
        self._count_claimed(len(claimed))
        return claimed

    async def _run(
        self,
        handler: Callable[[dict[str, Any]], Awaitable[object]],
        message_id: Any,
        fields: Mapping[Any, Any],
        delivery: int,
    ) -> int:
        decoded = _decoded(fields)
        result = await self._consumer.process_async(
            handler, decoded, headers=decoded, message_id=_text(message_id), delivery=delivery
        )
        if result.ack:
            await self._client.xack(self.stream, self.group, message_id)
        return 1

    async def measure(self) -> tuple[int | None, int]:
        """The group's lag (``None`` when Redis cannot tell) and pending count, as gauges."""
        return self._gauges(await self._client.xinfo_groups(self.stream))
