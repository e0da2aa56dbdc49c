"""Idempotent consumers: each message id processed once, across workers and redeliveries.

A claim on a message id is atomic (one Lua script in Redis, one lock in memory) and has
two states: *running*, held under a lease by the run that claimed it, and *done*, kept
for ``ttl``. A second delivery of a done message is a ``duplicate``; one that arrives
while another run holds the lease is ``in_progress`` (leave it for later, do not drop it);
one that arrives after the lease ran out (the first run crashed) takes the claim over.
A run that fails releases its claim, so the redelivery runs again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from .._args import seconds
from .._deadline import Clock
from .._errors import ConfigurationError
from ..telemetry import _names as n

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = [
    "AsyncIdempotencyStore",
    "AsyncRedisIdempotency",
    "ClaimOutcome",
    "IdempotencyStore",
    "InMemoryIdempotency",
    "RedisIdempotency",
]

ClaimOutcome: TypeAlias = Literal["first", "taken_over", "duplicate", "in_progress"]
"""How a claim went: the two first ones mean "run it", the others "do not"."""

_MAX_KEY = 200  # longer message ids are hashed: a hostile id cannot make a huge key


class IdempotencyStore(Protocol):
    """Where claims live; :class:`RedisIdempotency` and :class:`InMemoryIdempotency`."""

    def claim(self, key: str, token: str) -> ClaimOutcome: ...

    def complete(self, key: str, token: str) -> None: ...

    def release(self, key: str, token: str) -> None: ...


class AsyncIdempotencyStore(Protocol):
    """The async twin of :class:`IdempotencyStore` (:class:`AsyncRedisIdempotency`)."""

    async def claim(self, key: str, token: str) -> ClaimOutcome: ...

    async def complete(self, key: str, token: str) -> None: ...

    async def release(self, key: str, token: str) -> None: ...


def _durations(ttl: object, lease: object) -> tuple[float, float]:
    ttl_s, lease_s = seconds(ttl, "ttl"), seconds(lease, "lease")
    if lease_s <= 0 or ttl_s <= 0:
        raise ConfigurationError(f"ttl and lease must be positive, got {ttl!r} and {lease!r}")
    if ttl_s < lease_s:
        raise ConfigurationError(f"ttl {ttl!r} is shorter than lease {lease!r}")
    return ttl_s, lease_s


def storage_key(prefix: str, destination: str, message_id: str) -> str:
    """The key of a message id: ids longer than 200 characters are hashed."""
    if len(message_id) > _MAX_KEY:
        message_id = "sha256:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return f"{prefix}{destination}:{message_id}"


# KEYS[1] the claim; ARGV token, lease ms, ttl ms. Redis's own clock, so that workers'
# clocks need not agree.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' then return 'duplicate' end
local outcome = 'first'
if state == 'running' then
  if tonumber(redis.call('HGET', KEYS[1], 'until')) > now then return 'in_progress' end
  outcome = 'taken_over'
end
redis.call('HSET', KEYS[1], 'state', 'running', 'token', ARGV[1], 'until', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return outcome
"""
# Done whoever holds the lease: the work happened.
_COMPLETE = """
redis.call('HSET', KEYS[1], 'state', 'done', 'token', ARGV[1])
redis.call('HDEL', KEYS[1], 'until')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# Only the holder of a running claim gives it back.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'running'
   and redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisIdempotency:
    """Claims in Redis (a ``redis.Redis`` client), shared by every worker that uses it.

    ``lease`` must be longer than a run takes: past it, a redelivery takes the claim over
    as if the first run had crashed. ``ttl`` is how long a done id is remembered.
    """

    __slots__ = ("_claim", "_complete", "_lease_ms", "_release", "_ttl_ms")

    def __init__(
        self,
        client: Any,
        *,
        ttl: float | timedelta = 86_400.0,
        lease: float | timedelta = 300.0,
    ) -> None:
        ttl_s, lease_s = _durations(ttl, lease)
        self._ttl_ms, self._lease_ms = int(ttl_s * 1000), int(lease_s * 1000)
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    def claim(self, key: str, token: str) -> ClaimOutcome:
        outcome: Any = _text(self._claim([key], [token, self._lease_ms, self._ttl_ms]))
        return outcome  # type: ignore[no-any-return]

    def complete(self, key: str, token: str) -> None:
        self._complete([key], [token, self._ttl_ms])

    def release(self, key: str, token: str) -> None:
        self._release([key], [token])


class AsyncRedisIdempotency:
    """:class:`RedisIdempotency` for a ``redis.asyncio.Redis`` client."""

    __slots__ = ("_claim", "_complete", "_lease_ms", "_release", "_ttl_ms")

    def __init__(
        self,
        client: Any,
        *,
        ttl: float | timedelta = 86_400.0,
        lease: float | timedelta = 300.0,
    ) -> None:
        ttl_s, lease_s = _durations(ttl, lease)
        self._ttl_ms, self._lease_ms = int(ttl_s * 1000), int(lease_s * 1000)
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    async def claim(self, key: str, token: str) -> ClaimOutcome:
        outcome: Any = _text(await self._claim([key], [token, self._lease_ms, self._ttl_ms]))
        return outcome  # type: ignore[no-any-return]

    async def complete(self, key: str, token: str) -> None:
        await self._complete([key], [token, self._ttl_ms])

    async def release(self, key: str, token: str) -> None:
        await self._release([key], [token])


class InMemoryIdempotency:
    """Claims in this process (one worker, tests): the same rules, an injected clock."""

    __slots__ = ("_claims", "_clock", "_lease", "_lock", "_sweep_at", "_ttl")

    def __init__(
        self,
        *,
        ttl: float | timedelta = 86_400.0,
        lease: float | timedelta = 300.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._ttl, self._lease = _durations(ttl, lease)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (state, token, lease end, expiry)
        self._claims: dict[str, tuple[str, str, float, float]] = {}
        self._sweep_at = 1024

    def claim(self, key: str, token: str) -> ClaimOutcome:
        now = self._clock()
        with self._lock:
            self._expire(now)
            held = self._claims.get(key)
            outcome: ClaimOutcome = "first"
            if held is not None and held[3] > now:
                if held[0] == "done":
                    return "duplicate"
                if held[2] > now:
                    return "in_progress"
                outcome = "taken_over"
            self._claims[key] = ("running", token, now + self._lease, now + self._ttl)
            return outcome

    def complete(self, key: str, token: str) -> None:
        now = self._clock()
        with self._lock:
            self._claims[key] = ("done", token, 0.0, now + self._ttl)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held[0] == "running" and held[1] == token:
                del self._claims[key]

    def _expire(self, now: float) -> None:
        # Amortised: a sweep each time the map doubles, so memory follows the ttl.
        if len(self._claims) >= self._sweep_at:
            for key in [k for k, v in self._claims.items() if v[3] <= now]:
                del self._claims[key]
            self._sweep_at = max(1024, 2 * len(self._claims))


IDEMPOTENCY_OUTCOMES: dict[ClaimOutcome, str] = {
    "first": n.IDEMPOTENCY_FIRST,
    "taken_over": n.IDEMPOTENCY_TAKEN_OVER,
    "duplicate": n.IDEMPOTENCY_DUPLICATE,
    "in_progress": n.IDEMPOTENCY_IN_PROGRESS,
}
