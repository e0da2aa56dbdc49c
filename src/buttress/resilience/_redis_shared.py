"""The batched backends of :class:`RedisStore` (``mode="batched"``): I/O around the cores.

Calls decide on local state without I/O (:mod:`._shared_core`); a background thread per
store (:class:`Syncer`) takes each breaker's and limiter's exchange with Redis once per
``sync_interval``, or sooner when something urgent happened (a local trip, a trial's
outcome, a spent lease). Redis work is therefore a fixed number of script calls per
replica and second, whatever the call rate, and a Redis that is slow, paused or gone
delays only the thread, never a call.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from ._breaker_core import (
    CLOSED,
    BreakerConfig,
    Outcome,
    State,
    Transition,
)
from ._redis_scripts import FleetArgs, verdict
from ._shared_core import URGENT_SHARE, LeaseCore, SharedBreakerCore

if TYPE_CHECKING:
    from ._redis import RedisStore, _Health

__all__ = ["SharedBreaker", "SharedLimiter", "Syncer"]

_log = logging.getLogger("buttress")


class _Member(Protocol):
    def due(self) -> bool: ...
    def exchange(self) -> bool: ...
    def after_fork(self) -> None: ...


class Syncer:
    """The thread that takes the exchanges of every batched strategy of one store.

    Started with the first strategy, a daemon (it never keeps a process alive), and
    started again in a forked child, where threads do not survive. Without a thread
    (``sync_thread=False``) :meth:`run_due` is called by hand: tests drive it this way.
    """

    def __init__(
        self, interval: float, *, thread: bool, after_fork: Callable[[], None] | None = None
    ) -> None:
        self._members: weakref.WeakSet[_Member] = weakref.WeakSet()
        # The owner's own fork hook, held weakly: a forgotten store is not kept alive.
        self._owner_after_fork = None if after_fork is None else weakref.WeakMethod(after_fork)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._poll = interval * URGENT_SHARE
        self._use_thread = thread
        self._thread: threading.Thread | None = None
        self._stopped = False
        if thread:
            _forked.add(self)

    def add(self, member: _Member) -> None:
        with self._lock:
            self._members.add(member)
        self.start()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if not self._use_thread:
            return
        with self._lock:
            if self._stopped or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, name="buttress-redis-sync", daemon=True
            )
            self._thread.start()

    def after_fork(self) -> None:
        # The parent's thread did not come along, and may have held a lock at the fork.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        owner = self._owner_after_fork() if self._owner_after_fork is not None else None
        if owner is not None:
            owner()
        for member in list(self._members):
            member.after_fork()
        if self._members:
            self.start()

    def run_due(self) -> None:
        """Take every exchange that is due now, in this thread."""
        with self._lock:
            members = list(self._members)
        for member in members:
            try:
                if member.due():
                    member.exchange()
            except Exception:  # never let one strategy's bug stop the others' exchanges
                _log.exception("buttress: a shared-state exchange failed")

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._poll)
            self._wake.clear()
            if not self._stopped:
                self.run_due()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


_forked: weakref.WeakSet[Syncer] = weakref.WeakSet()


def _after_fork() -> None:
    for syncer in list(_forked):
        syncer.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SharedBreaker:
    """A breaker that decides locally and meets the fleet's breaker once per interval."""

    __slots__ = (
        "__weakref__",
        "_announce",
        "_args",
        "_clock",
        "_health",
        "_keys",
        "_lock",
        "_store",
        "_syncer",
        "core",
        "local",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        announce: Callable[[list[Transition]], None],
        health: _Health,
        syncer: Syncer,
    ) -> None:
        self._store = store
        self._keys = (f"{store.key('breaker', name)}:fleet",)
        self._clock = clock
        self._announce = announce
        self._health = health
        self._lock = threading.Lock()
        self.core = SharedBreakerCore(config, store.sync_interval)
        longest = max(
            config.max_reset_timeout, config.window if config.window_type == "time" else 0
        )
        self._args = FleetArgs(config, int(max(2 * longest, 3600) * 1000))
        self.local = True  # no call waits for Redis: the shell never awaits this backend
        self._syncer = syncer
        syncer.add(self)

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def _drain(self) -> list[Transition] | None:
        moved = self.core.transitions
        if not moved:
            return None
        self.core.transitions = []
        return moved

    def _after(self, moved: list[Transition] | None, was_urgent: bool) -> None:
        if not was_urgent and self.core.urgent:
            self._syncer.wake()
        if moved:
            self._announce(moved)

    # -- the backend protocol ---------------------------------------------------------

    def admit(self) -> int:
        core = self.core
        if core.state is CLOSED and core.connected:
            ticket = core.local.closed_ticket
            if ticket >= 0:
                return ticket  # closed: two attribute reads, no lock
        with self._lock:
            urgent = core.urgent
            ticket = core.admit(self._clock())
            moved = self._drain()
        self._after(moved, urgent)
        return ticket

    def record(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        core = self.core
        with self._lock:
            urgent = core.urgent
            counted = core.record(self._clock(), ticket, outcome, duration)
            moved = self._drain() if core.transitions else None
        self._after(moved, urgent)
        return counted

    async def admit_async(self) -> int:
        return self.admit()

    async def record_async(self, ticket: int, outcome: Outcome, duration: float) -> bool:
        return self.record(ticket, outcome, duration)

    def rejection(self) -> tuple[State, float | None]:
        with self._lock:
            return self.core.state, self.core.retry_after(self._clock())

    def current_state(self) -> State:
        return self.core.state

    def retry_after(self) -> float | None:
        with self._lock:
            return self.core.retry_after(self._clock())

    def force(self, state: Literal["forced_open", "forced_closed"]) -> None:
        self._control(State(state))

    def reset(self) -> None:
        self._control(CLOSED)

    def _control(self, target: State) -> None:
        # Steering goes to the fleet at once, from the caller's thread; if Redis does not
        # answer, it steers this replica alone.
        if not self.exchange(target):
            with self._lock:
                self.core.steer_alone(target)
                moved = self._drain()
            if moved:
                self._announce(moved)

    # -- the exchange -----------------------------------------------------------------

    def due(self) -> bool:
        return self.core.due(self._clock()) and not self._health.use_local()

    def exchange(self, control: State | None = None) -> bool:
        """One exchange with Redis; ``False`` if it failed (this replica decides alone)."""
        with self._lock:
            report = self.core.report(self._clock(), control)
        try:
            reply = self._store.eval_script("fleet", self._keys, self._args.exchange(report))
        except Exception as exc:
            with self._lock:
                self.core.failed(report)
                moved = self._drain()
            self._health.failed(exc)
            if moved:
                self._announce(moved)
            return False
        self._health.answered()
        with self._lock:
            self.core.apply(self._clock(), verdict(reply))
            moved = self._drain()
        if moved:
            self._announce(moved)
        return True


class SharedLimiter:
    """A rate limiter that spends tokens leased from the fleet's bucket in slices."""

    __slots__ = (
        "__weakref__",
        "_args",
        "_clock",
        "_health",
        "_key",
        "_lock",
        "_store",
        "_syncer",
        "core",
        "local",
    )

    def __init__(
        self,
        store: RedisStore,
        name: str,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        health: _Health,
        syncer: Syncer,
    ) -> None:
        self._store = store
        self._key = (f"{store.key('ratelimit', name)}:lease",)
        self._clock = clock
        self._health = health
        self._lock = threading.Lock()
        self.core = LeaseCore(rate, burst, store.sync_interval, clock())
        # The shared bucket holds at least one interval of the rate: replicas fetch once
        # per interval, and a smaller bucket would overflow between their fetches.
        capacity = max(burst, rate * store.sync_interval)
        ttl = int(max(2 * capacity / rate, 60) * 1000)
        self._args = (repr(rate / 1000), repr(capacity), ttl)
        self.local = True
        self._syncer = syncer
        syncer.add(self)

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def take(self, max_wait: float) -> float:
        core = self.core
        with self._lock:
            urgent = core.urgent
            wait = core.take(self._clock(), max_wait)
        if not urgent and core.urgent:
            self._syncer.wake()
        return wait

    async def take_async(self, max_wait: float) -> float:
        return self.take(max_wait)

    def give_back(self) -> None:
        with self._lock:
            self.core.give_back(self._clock())

    async def give_back_async(self) -> None:
        self.give_back()

    def due(self) -> bool:
        return self.core.due(self._clock()) and not self._health.use_local()

    def exchange(self) -> bool:
        with self._lock:
            ask, returned = self.core.ask(self._clock())
            known = self.core.known
        rate, burst, ttl = self._args
        try:
            reply = self._store.eval_script(
                "lease", self._key, (rate, burst, ask, returned, int(known), ttl)
            )
        except Exception as exc:
            with self._lock:
                self.core.failed()
            self._health.failed(exc)
            return False
        self._health.answered()
        granted, retry_ms = int(reply[0]), float(reply[1])
        with self._lock:
            self.core.leased(granted, retry_ms / 1000)
        return True
