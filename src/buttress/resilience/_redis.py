"""``RedisStore``: breaker and rate-limiter state shared by every replica through Redis.

Each admission and each recorded outcome is one atomic script call (``EVALSHA``, loaded
on first use or after a server restart), timed by the server's clock. The ``redis``
package is imported only when a store first talks to Redis, so ``import buttress``
never imports it.

When Redis fails (refused, timed out, anything), the strategy decides on local state
instead, emits :class:`~buttress.events.StoreUnavailable` once, and leaves Redis alone
for ``retry_interval`` seconds; the first call after that tries Redis again and, if it
answers, emits :class:`~buttress.events.StoreRecovered`. The protected call never sees a
Redis error. An outcome admitted by Redis but recorded while it is away is dropped.

``mode="batched"`` trades that per-call strictness for Redis work that does not grow
with the call rate: see :mod:`._redis_shared`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._args import check_int, check_name, check_seconds
from .._errors import ConfigurationError
from .._events import Registry, StoreRecovered, StoreUnavailable
from ._breaker_backend import LocalBreaker
from ._breaker_core import (
    CLOSED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    REJECTED,
    STATES_BY_CODE,
    BreakerConfig,
    Outcome,
    Reason,
    State,
    Transition,
)
from ._limiter_backend import LocalLimiter
from ._redis_scripts import (
    BREAKER_ADMIT,
    BREAKER_CONTROL,
    BREAKER_PEEK,
    BREAKER_RECORD,
    BUCKET_GIVE_BACK,
    BUCKET_TAKE,
    FLEET_EXCHANGE,
    LEASE_TAKE,
    BreakerArgs,
    admitted,
    recorded,
)
from ._redis_shared import SharedBreaker, SharedLimiter, Syncer

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["RedisStore"]

_log = logging.getLogger("buttress")
T = TypeVar("T")
# Undo tasks started for cancelled callers: referenced until done, so none is collected.
_UNDOING: set[asyncio.Task[None]] = set()


async def _settle(
    call: Coroutine[Any, Any, T], undo: Callable[[T], Awaitable[None] | None] | None = None
) -> T:
    """Await a script call to its end even if the caller is cancelled meanwhile.

    A cancelled caller cannot know whether its script ran: the decision may be taken in
    Redis (a trial permit, a token) with nobody left to use it. So the call runs on as a
    task; the caller's cancellation propagates at once, and when the call finishes,
    ``undo`` gives back whatever it took.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if undo is not None:

            def finished(done: asyncio.Future[T]) -> None:
                if done.cancelled() or done.exception() is not None:
                    return
                undoing = undo(done.result())
                if undoing is not None:
                    follow = asyncio.ensure_future(undoing)
                    _UNDOING.add(follow)
                    follow.add_done_callback(_UNDOING.discard)

            task.add_done_callback(finished)
        raise


# Tickets handed out by the local fallback carry this bit, so their outcomes go back to
# the local state even if Redis has returned in between.
_LOCAL = 1 << 60
_SCRIPTS = {
    "admit": BREAKER_ADMIT,
    "record": BREAKER_RECORD,
    "control": BREAKER_CONTROL,
    "peek": BREAKER_PEEK,
    "take": BUCKET_TAKE,
    "give_back": BUCKET_GIVE_BACK,
    "fleet": FLEET_EXCHANGE,
    "lease": LEASE_TAKE,
}
_MODES = ("per_call", "batched")


def _client_kind(client: object) -> Literal["sync", "async"]:
    """Whether ``client`` is a sync or an asyncio redis-py client, or refuse it."""
    import redis
    import redis.asyncio
    import redis.cluster

    if isinstance(client, redis.Redis | redis.cluster.RedisCluster):
        return "sync"
    if isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
        return "async"
    raise ConfigurationError(
        "client must be a redis.Redis, redis.cluster.RedisCluster, redis.asyncio.Redis or "
        f"redis.asyncio.RedisCluster (Sentinel: sentinel.master_for(...)), got {client!r}"
    )


class RedisStore:
    """Where breakers and rate limiters built with ``store=`` keep their state.

    ``url`` is a ``redis://`` URL, or ``client`` an existing redis-py client (sync or
    asyncio, standalone or cluster; Sentinel through ``sentinel.master_for(...)``), used
    as it is configured. ``service`` namespaces the keys
    (``buttress:{service}:breaker:{name}``), so services sharing a Redis never share a
    breaker by accident; the name is a hash tag, so a Redis Cluster runs the scripts.
    ``socket_timeout`` is short so a dead Redis fails fast; ``retry_interval`` is how long
    a strategy decides locally before it tries Redis again. ``max_connections`` bounds
    each event loop's pool (tasks queue for a connection).
    The scripts read the time from the Redis server, so replicas with skewed clocks
    agree; ``server_time=False`` makes them use ``clock`` instead (tests drive a shared
    breaker with a :class:`~buttress.testing.FakeClock` this way).

    ``mode="per_call"`` (the default) asks Redis on every decision: strict, and a round
    trip per call. ``mode="batched"`` decides locally and exchanges with Redis once per
    ``sync_interval`` from a background thread (``sync_thread=False``: only when
    :meth:`sync` is called), so Redis work does not grow with the call rate.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: object = None,
        service: str = "default",
        mode: Literal["per_call", "batched"] = "per_call",
        sync_interval: float | timedelta = 0.5,
        sync_thread: bool = True,
        socket_timeout: float | timedelta = 0.25,
        retry_interval: float | timedelta = 5.0,
        max_connections: int = 50,
        clock: Callable[[], float] = time.monotonic,
        server_time: bool = True,
    ) -> None:
        # Found, not imported: a missing extra is a set-up mistake to report now, not an
        # outage to fall back from on every call.
        if importlib.util.find_spec("redis") is None:
            raise ConfigurationError(
                "RedisStore needs the redis package: pip install 'buttress[redis]'"
            )
        self._given_sync: Any = None
        self._given_async: Any = None
        if client is not None:
            if url is not None:
                raise ConfigurationError(
                    f"give url or client, not both; got url={url!r} and client={client!r}"
                )
            if _client_kind(client) == "sync":
                self._given_sync = client
            else:
                self._given_async = client
            url = ""
        elif url is None:
            url = "redis://127.0.0.1:6379/0"
        elif not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                f"url must be a redis://, rediss:// or unix:// URL, got {url!r}"
            )
        self.url = url
        self.service = check_name(service, "service")
        if mode not in _MODES:
            raise ConfigurationError(f"mode must be 'per_call' or 'batched', got {mode!r}")
        if mode == "batched" and self._given_async is not None:
            raise ConfigurationError(
                "mode='batched' exchanges with Redis from a background thread and needs a "
                f"sync client (or a URL), got the asyncio client {client!r}"
            )
        self.mode = mode
        self.sync_interval = check_seconds("sync_interval", sync_interval)
        if not isinstance(sync_thread, bool):
            raise ConfigurationError(f"sync_thread must be True or False, got {sync_thread!r}")
        self.socket_timeout = check_seconds("socket_timeout", socket_timeout)
        self.retry_interval = check_seconds("retry_interval", retry_interval)
        self.max_connections = check_int("max_connections", max_connections, minimum=1)
        self._clock = clock
        if not isinstance(server_time, bool):
            raise ConfigurationError(f"server_time must be True or False, got {server_time!r}")
        self.server_time = server_time
        self._lock = threading.Lock()
        self._sync: Any = None
        self._sync_scripts: dict[str, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._syncer = (
            Syncer(self.sync_interval, thread=sync_thread, after_fork=self._after_fork)
            if mode == "batched"
            else None
        )

    def _after_fork(self) -> None:
        # In a forked child: the parent's exchange thread may have held this lock.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = repr(self.url) if self.url else f"client={self._given_sync or self._given_async!r}"
        return f"RedisStore({where}, service={self.service!r}, mode={self.mode!r})"

    def key(self, kind: str, name: str) -> str:
        """The Redis key of strategy ``name`` of ``kind`` (``"breaker"`` or ``"ratelimit"``).

        The name is a hash tag (``{name}``), so a breaker's keys share one cluster slot.
        """
        return f"buttress:{self.service}:{kind}:{{{name}}}"

    # -- clients (built on first use: the import of redis happens here) -----------------

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "retry_on_timeout": False,
        }

    def _now(self) -> str:
        """The time the scripts use: "" for the server's, else ``clock`` in ms."""
        return "" if self.server_time else repr(self._clock() * 1000)

    def eval_script(self, script: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run one of our scripts with the sync client (EVALSHA, loading it if needed)."""
        args = (self._now(), *args)
        scripts = self._sync_scripts
        if not scripts:
            if self._given_async is not None:
                raise ConfigurationError(
                    "RedisStore(client=...) was given an asyncio client, which serves async "
                    "calls only; give a sync client (or a URL) for sync calls"
                )
            import redis

            with self._lock:
                if not self._sync_scripts:
                    self._sync = self._given_sync or redis.Redis.from_url(
                        self.url, **self._options()
                    )
                    self._sync_scripts = {
                        name: self._sync.register_script(text) for name, text in _SCRIPTS.items()
                    }
            scripts = self._sync_scripts
        return scripts[script](keys=list(keys), args=list(args))

    async def eval_script_async(
        self, script: str, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """The asyncio twin of :meth:`run`; each event loop gets its own client."""
        if self._given_sync is not None:
            # A sync client serves async calls from a worker thread, off the event loop.
            return await asyncio.to_thread(self.eval_script, script, keys, args)
        args = (self._now(), *args)
        loop = asyncio.get_running_loop()
        scripts = self._async.get(loop)
        if scripts is None:
            import redis.asyncio

            client = self._given_async
            if client is None:
                # Tasks queue for a connection (up to a second) instead of failing: an
                # exhausted pool is not a Redis outage.
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    self.url, max_connections=self.max_connections, timeout=1.0, **self._options()
                )
                client = redis.asyncio.Redis(connection_pool=pool)
            scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
            self._async[loop] = scripts
        return await scripts[script](keys=list(keys), args=list(args))

    def sync(self) -> None:
        """Take every batched exchange that is due now, in this thread.

        The background thread does this on its own; with ``sync_thread=False`` it is how
        exchanges happen (tests drive a batched store with a fake clock this way).
        """
        if self._syncer is not None:
            self._syncer.run_due()

    def close(self) -> None:
        """Stop the exchanges and close the connections this store opened.

        A client given as ``client=`` is left open: it belongs to the caller.
        """
        if self._syncer is not None:
            self._syncer.stop()
        with self._lock:
            if self._sync is not None and self._given_sync is None:
                self._sync.close()
            self._sync, self._sync_scripts = None, {}

    # -- factories used by the strategies ---------------------------------------------

    def breaker_backend(
        self,
        name: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        announce: Callable[[list[Transition]], None],
        registry: Registry,
    ) -> RedisBreaker | SharedBreaker:
        if self._syncer is not None:
            health = _Health(name, self, registry)
            return SharedBreaker(self, name, config, clock, announce, health, self._syncer)
        return RedisBreaker(self, name, config, clock, announce, registry)

    def limiter_backend(
        self,
        name: str,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        registry: Registry,
    ) -> RedisLimiter | SharedLimiter:
        if self._syncer is not None:
            health = _Health(name, self, registry)
            return SharedLimiter(self, name, rate, burst, clock, health, self._syncer)
        return RedisLimiter(self, name, rate, burst, clock, registry)


class _Health:
    """Whether a strategy talks to Redis now or decides locally until ``down_until``."""

    __slots__ = ("_clock", "_interval", "_lock", "_name", "_registry", "down_until")

    def __init__(self, name: str, store: RedisStore, registry: Registry) -> None:
        self._name = name
        self._clock = store._clock
        self._interval = store.retry_interval
        self._registry = registry
        self._lock = threading.Lock()
        self.down_until: float | None = None

    def use_local(self) -> bool:
        down_until = self.down_until
        return down_until is not None and self._clock() < down_until

    def failed(self, exc: BaseException) -> bool:
        """Note a failure; ``True`` if Redis was thought healthy until now."""
        with self._lock:
            first = self.down_until is None
            self.down_until = self._clock() + self._interval
        if first:
            _log.warning("buttress: Redis failed for %r, deciding locally: %r", self._name, exc)
            if self._registry.active:
                self._registry.emit(StoreUnavailable(self._name, "redis", type(exc).__name__))
        return first

    def answered(self) -> None:
        if self.down_until is None:
            return
        with self._lock:
            recovered = self.down_until is not None
            self.down_until = None
        if recovered and self._registry.active:
            self._registry.emit(StoreRecovered(self._name, "redis"))


class RedisBreaker:
    """A breaker whose state is a Redis hash, with a local breaker for when Redis is away."""

    __slots__ = (
        "_announce",
        "_args",
        "_health",
        "_keys",
        "_last",
        "_store",
        "config",
        "fallback",
        "local",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        announce: Callable[[list[Transition]], None],
        registry: Registry,
    ) -> None:
        self._store = store
        self.config = config
        key = store.key("breaker", name)
        self._keys = (key, f"{key}:window", f"{key}:buckets")
        self._announce = announce
        self._health = _Health(name, store, registry)
        self.fallback = LocalBreaker(config, clock, announce)
        self.local = False
        longest = max(
            config.max_reset_timeout, config.window if config.window_type == "time" else 0
        )
        self._args = BreakerArgs(config, int(max(2 * longest, 3600) * 1000))
        # The last state Redis reported: why an admission was refused, and whether the
        # local fallback must start open should Redis go away.
        self._last: tuple[State, float | None] = (CLOSED, 0.0)

    # -- replies ------------------------------------------------------------------------

    def _admitted(self, reply: list[int]) -> int:
        ticket, state, retry_after, moved = admitted(reply)
        self._last = (state, retry_after)
        if moved is not None:
            self._announce([moved])
        return ticket

    def _recorded(self, reply: list[int]) -> bool:
        counted, moved = recorded(reply)
        if moved is not None:
            retry = self.config.reset_timeout if moved.new is OPEN else 0.0
            self._last = (moved.new, retry)
            self._announce([moved])
        return counted

    def _down(self, exc: BaseException) -> None:
        # A breaker Redis last saw open must not start closed locally: that would let a
        # burst through to a dependency every replica agreed was down.
        if self._health.failed(exc) and self._last[0] in (OPEN, HALF_OPEN):
            self.fallback.trip(Reason.STORE_UNAVAILABLE)

    def _local_admit(self) -> int:
        ticket = self.fallback.admit()
        return ticket if ticket == REJECTED else ticket | _LOCAL

    # -- the backend protocol --------------------------------------------------------------

    def admit(self) -> int:
        if self._health.use_local():
            return self._local_admit()
        try:
            reply = self._store.eval_script("admit", self._keys, self._args.admit)
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._down(exc)
            return self._local_admit()
        self._health.answered()
        return self._admitted(reply)

    async def admit_async(self) -> int:
        if self._health.use_local():
            return self._local_admit()
        return await _settle(self._admit_remote(), self._unused)

    async def _admit_remote(self) -> int:
        try:
            reply = await self._store.eval_script_async("admit", self._keys, self._args.admit)
        except Exception as exc:
            self._down(exc)
            return self._local_admit()
        self._health.answered()
        return self._admitted(reply)

    def _unused(self, ticket: int) -> Awaitable[None] | None:
        """A permit taken for a caller cancelled meanwhile: give it back, counting nothing."""
        if ticket == REJECTED:
            return None
        return self._forget(ticket)

    async def _forget(self, ticket: int) -> None:
        await self.record_async(ticket, Outcome.IGNORED, 0.0)

    def record(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        if ticket & _LOCAL:
            return self.fallback.record(ticket & ~_LOCAL, outcome, duration)
        if self._health.use_local():
            return False
        try:
            reply = self._store.eval_script(
                "record", self._keys, self._args.outcome(ticket, outcome, duration)
            )
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._down(exc)
            return False
        return self._recorded(reply)

    async def record_async(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        if ticket & _LOCAL:
            return self.fallback.record(ticket & ~_LOCAL, outcome, duration)
        if self._health.use_local():
            return False
        # Recorded even if the caller is cancelled meanwhile: a trial's outcome (or its
        # permit, when ignored) must reach Redis.
        return await _settle(self._record_remote(ticket, outcome, duration))

    async def _record_remote(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        try:
            reply = await self._store.eval_script_async(
                "record", self._keys, self._args.outcome(ticket, outcome, duration)
            )
        except Exception as exc:
            self._down(exc)
            return False
        return self._recorded(reply)

    def _peek(self) -> tuple[State, float | None]:
        if self._health.use_local():
            return self.fallback.rejection()
        try:
            reply = self._store.eval_script("peek", self._keys, self._args.peek)
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._down(exc)
            return self.fallback.rejection()
        state, retry_ms = (int(x) for x in reply)
        self._last = (STATES_BY_CODE[state], None if retry_ms < 0 else retry_ms / 1000)
        return self._last

    def rejection(self) -> tuple[State, float | None]:
        # The admission reply said why; a concurrent rejection may have overwritten it
        # with its own, which is as recent and as true.
        return self.fallback.rejection() if self._health.use_local() else self._last

    def current_state(self) -> State:
        return self._peek()[0]

    def retry_after(self) -> float | None:
        return self._peek()[1]

    def _control(self, target: State) -> bool:
        """Steer the shared state; ``False`` if Redis did not answer."""
        try:
            reply = self._store.eval_script(
                "control", self._keys, (target.code, *self._args.control_tail)
            )
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._down(exc)
            return False
        self._health.answered()
        old, new = (int(x) for x in reply)
        if new >= 0:
            state = STATES_BY_CODE[new]
            self._last = (state, None if state is FORCED_OPEN else 0.0)
            self._announce([Transition(STATES_BY_CODE[old], state, Reason.MANUAL)])
        return True

    def force(self, state: Literal["forced_open", "forced_closed"]) -> None:
        # Steer both: the local state takes over whenever Redis is away. Announced once:
        # by Redis when it answered, else by the local state.
        answered = self._control(State(state))
        self.fallback.force(state, announce=not answered)

    def reset(self) -> None:
        answered = self._control(CLOSED)
        self.fallback.reset(announce=not answered)


class RedisLimiter:
    """A token bucket kept in Redis, with a local bucket for when Redis is away."""

    __slots__ = ("_args", "_health", "_key", "_store", "fallback", "local")

    def __init__(
        self,
        store: RedisStore,
        name: str,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        registry: Registry,
    ) -> None:
        self._store = store
        self._key = (store.key("ratelimit", name),)
        self._health = _Health(name, store, registry)
        self.fallback = LocalLimiter(rate, burst, clock)
        self.local = False
        ttl = int(max(2 * burst / rate, 60) * 1000)
        self._args = (repr(rate / 1000), repr(burst), ttl)

    def _argv(self, max_wait: float) -> tuple[object, ...]:
        rate, burst, ttl = self._args
        return (rate, burst, repr(max_wait * 1000), ttl)

    def _give_back_args(self) -> tuple[object, ...]:
        rate, burst, ttl = self._args
        return (rate, burst, ttl)

    def give_back(self) -> None:
        if self._health.use_local():
            self.fallback.give_back()
            return
        try:
            self._store.eval_script("give_back", self._key, self._give_back_args())
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._health.failed(exc)

    async def give_back_async(self) -> None:
        if self._health.use_local():
            self.fallback.give_back()
            return
        try:
            await self._store.eval_script_async("give_back", self._key, self._give_back_args())
        except Exception as exc:
            self._health.failed(exc)

    def take(self, max_wait: float) -> float:
        if self._health.use_local():
            return self.fallback.take(max_wait)
        try:
            reply = self._store.eval_script("take", self._key, self._argv(max_wait))
        except ConfigurationError:
            raise  # a sync call through an asyncio client: a set-up mistake, not an outage
        except Exception as exc:
            self._health.failed(exc)
            return self.fallback.take(max_wait)
        self._health.answered()
        return float(reply) / 1000

    async def take_async(self, max_wait: float) -> float:
        if self._health.use_local():
            return self.fallback.take(max_wait)
        return await _settle(self._take_remote(max_wait), self._untaken)

    def _untaken(self, wait: float) -> Awaitable[None] | None:
        """A token taken (or reserved) for a caller cancelled meanwhile goes back."""
        return None if wait < 0 else self.give_back_async()

    async def _take_remote(self, max_wait: float) -> float:
        try:
            reply = await self._store.eval_script_async("take", self._key, self._argv(max_wait))
        except Exception as exc:
            self._health.failed(exc)
            return self.fallback.take(max_wait)
        self._health.answered()
        return float(reply) / 1000
