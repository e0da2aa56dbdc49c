"""Events: the seam between the resilience core and everything that observes it.

Strategies decide and emit small frozen events; they never touch metrics, spans or logs.
Listeners (plain callables taking one event) turn events into telemetry. The default
listeners, built by :mod:`buttress.telemetry`, are loaded on the first emission, so a
decorated call is observable without any set-up and an unused registry costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "AdmissionDecided",
    "AdmissionLimitUpdated",
    "BreakerCallRecorded",
    "BreakerRejected",
    "BreakerTransition",
    "BulkheadRejected",
    "BulkheadUsage",
    "Event",
    "FallbackUsed",
    "FaultInjected",
    "HedgeSent",
    "HedgeWon",
    "Listener",
    "RateLimitRejected",
    "RateLimitWaited",
    "Registry",
    "RetryFinished",
    "RetryScheduled",
    "StoreRecovered",
    "StoreUnavailable",
    "ThrottleRejected",
    "ThrottleUpdated",
    "TimeoutExpired",
    "default_registry",
]

_log = logging.getLogger("buttress")

RetryOutcome: TypeAlias = Literal["success", "exhausted", "deadline", "budget", "not_retryable"]
BreakerState: TypeAlias = Literal["closed", "open", "half_open", "forced_open", "forced_closed"]
CallOutcome: TypeAlias = Literal["success", "failure", "ignored"]
AdmissionOutcome: TypeAlias = Literal["admitted", "shed", "rate_limited", "deadline"]


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Attempt ``attempt`` (1-based) failed; the next one starts after ``wait`` seconds.

    ``error_type`` is the exception's class name, or ``"result"`` when a result
    predicate asked for the retry.
    """

    name: str
    attempt: int
    wait: float
    error_type: str


@dataclass(frozen=True, slots=True)
class RetryFinished:
    """A retried call ended after ``attempts`` attempts, for the reason ``outcome``.

    ``error_type`` is empty on success. ``"budget"`` means the retry budget refused a
    retry; ``"deadline"`` means the next wait would have crossed the total deadline.
    """

    name: str
    attempts: int
    outcome: RetryOutcome
    error_type: str


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """The breaker ``name`` moved from ``old`` to ``new``; ``reason`` says why."""

    name: str
    old: BreakerState
    new: BreakerState
    reason: str


@dataclass(frozen=True, slots=True)
class BreakerRejected:
    """The breaker refused a call while in ``state``."""

    name: str
    state: BreakerState


@dataclass(frozen=True, slots=True)
class BreakerCallRecorded:
    """The breaker counted a call's outcome; ``slow`` when it ran past the slow threshold."""

    name: str
    outcome: CallOutcome
    slow: bool


@dataclass(frozen=True, slots=True)
class BulkheadUsage:
    """The bulkhead's occupancy changed: ``in_use`` of ``capacity`` slots, ``waiting`` queued."""

    name: str
    in_use: int
    waiting: int
    capacity: int


@dataclass(frozen=True, slots=True)
class BulkheadRejected:
    """The bulkhead refused a call: ``"full"`` (no waiting place) or ``"wait_timeout"``."""

    name: str
    reason: Literal["full", "wait_timeout"]


@dataclass(frozen=True, slots=True)
class RateLimitRejected:
    """The rate limiter had no token; the next one comes in ``retry_after`` seconds."""

    name: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class RateLimitWaited:
    """The rate limiter made a caller wait ``wait`` seconds for a token."""

    name: str
    wait: float


@dataclass(frozen=True, slots=True)
class TimeoutExpired:
    """A call ran past its ``timeout`` (seconds) and was cancelled or refused."""

    name: str
    timeout: float


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """The fallback answered instead of the call, which raised ``error_type``."""

    name: str
    error_type: str


@dataclass(frozen=True, slots=True)
class StoreUnavailable:
    """The shared state store (``store``: ``"redis"``) failed; ``name`` decides locally now."""

    name: str
    store: str
    error_type: str


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The shared state store answers again; ``name`` uses shared state again."""

    name: str
    store: str


@dataclass(frozen=True, slots=True)
class FaultInjected:
    """Fault injection ``name`` injected a fault of ``kind`` on purpose."""

    name: str
    kind: Literal["exception", "result", "latency"]


@dataclass(frozen=True, slots=True)
class HedgeSent:
    """No answer after ``delay`` seconds: attempt ``attempt`` (2 for the first hedge) was sent."""

    name: str
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class HedgeWon:
    """A hedged attempt, ``attempt`` (2 or more), answered first; the others were given up."""

    name: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ThrottleRejected:
    """Adaptive throttling refused a call locally, with ``probability`` of refusing."""

    name: str
    probability: float


@dataclass(frozen=True, slots=True)
class ThrottleUpdated:
    """Throttle ``name``'s window now holds ``requests`` requests of which ``accepts`` were
    accepted by the dependency; ``acceptance`` is their ratio (1.0 with no requests)."""

    name: str
    requests: int
    accepts: int
    acceptance: float


@dataclass(frozen=True, slots=True)
class AdmissionDecided:
    """The middleware's admission ``name`` let a request in, or refused it, and why.

    ``outcome`` is ``"admitted"``, ``"shed"`` (over the concurrency limit, 503),
    ``"rate_limited"`` (the rate limit ``rule`` refused it, 429) or ``"deadline"`` (its
    propagated deadline could not be met, 504); ``criticality`` is the request's.
    """

    name: str
    outcome: AdmissionOutcome
    criticality: str
    rule: str = ""


@dataclass(frozen=True, slots=True)
class AdmissionLimitUpdated:
    """Admission ``name`` updated its concurrency limit at the end of a window: ``limit``.

    It may stay where it was; ``in_flight`` is the number of requests in flight then.
    """

    name: str
    limit: int
    in_flight: int


Event: TypeAlias = (
    RetryScheduled
    | RetryFinished
    | BreakerTransition
    | BreakerRejected
    | BreakerCallRecorded
    | BulkheadUsage
    | BulkheadRejected
    | RateLimitRejected
    | RateLimitWaited
    | TimeoutExpired
    | FallbackUsed
    | StoreUnavailable
    | StoreRecovered
    | FaultInjected
    | HedgeSent
    | HedgeWon
    | ThrottleRejected
    | ThrottleUpdated
    | AdmissionDecided
    | AdmissionLimitUpdated
)


class Listener(Protocol):
    """Anything called with each event. It must be quick and must not raise.

    A listener that raises anyway is logged and skipped: observing a call never breaks it.
    A listener may also have a ``prepare(event)`` method (see :meth:`Registry.emit_prebuilt`).
    """

    def __call__(self, event: Event, /) -> None: ...


Action: TypeAlias = "Callable[[], object]"
_MAX_PREPARED = 4096  # prebuilt events with their listeners' actions cached


def _telemetry_defaults() -> tuple[Listener, ...]:
    # Imported by name on first use so that ``import buttress`` stays cheap and the
    # resilience core never imports telemetry.
    try:
        module = importlib.import_module("buttress.telemetry._listeners")
    except ImportError:
        return ()
    factory: Callable[[], Iterable[Listener]] = module.default_listeners
    return tuple(factory())


def _prepare(listener: Listener, event: Event) -> Action | None:
    prepare = getattr(listener, "prepare", None)
    if prepare is not None:
        try:
            action: Action | None = prepare(event)
        except Exception:  # observing never breaks the call: emit as usual instead
            _log.exception("buttress listener %r failed to prepare %r", listener, event)
        else:
            return action
    return functools.partial(listener, event)


class Registry:
    """The listeners that hear a group of strategies' events.

    Strategies hold a registry (the default one unless given another) and check
    :attr:`active` before they build an event, so an empty registry costs one attribute
    read per decision. Listeners are kept in a tuple that is replaced, never mutated:
    emitting takes no lock.
    """

    __slots__ = ("_defaults", "_listeners", "_lock", "_prepared", "_resolved", "active")

    def __init__(self, defaults: Callable[[], Iterable[Listener]] | None = None) -> None:
        self._defaults = defaults
        self._listeners: tuple[Listener, ...] = ()
        # id(event) -> (event, the listeners prepared for, their actions); see emit_prebuilt
        self._prepared: dict[int, tuple[Event, tuple[Listener, ...], tuple[Action, ...]]] = {}
        self._resolved = defaults is None
        self._lock = threading.Lock()
        # True until proven otherwise: unresolved defaults may add listeners.
        self.active: bool = not self._resolved

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The listeners, loading the defaults first if that has not happened yet."""
        self._resolve()
        return self._listeners

    def _resolve(self) -> None:
        if self._resolved:
            return
        with self._lock:
            if not self._resolved:  # another thread may have resolved meanwhile
                defaults = self._defaults() if self._defaults is not None else ()
                self._resolved = True
                self._set(tuple(defaults) + self._listeners)

    def _set(self, listeners: tuple[Listener, ...]) -> None:
        self._listeners = listeners
        # Forget what the old listeners prepared, so a removed listener is not kept alive.
        self._prepared = {}
        self.active = bool(listeners) or not self._resolved

    def add(self, listener: Listener) -> None:
        """Add ``listener`` (after the defaults, which load first)."""
        self._resolve()
        with self._lock:
            if listener not in self._listeners:
                self._set((*self._listeners, listener))

    def remove(self, listener: Listener) -> None:
        """Remove ``listener``; removing one that is not there does nothing."""
        with self._lock:
            self._set(tuple(x for x in self._listeners if x is not listener))

    def clear(self) -> None:
        """Remove every listener, the defaults included, and do not load them again."""
        with self._lock:
            self._resolved = True
            self._set(())

    def reset(self) -> None:
        """Forget every listener; the defaults load again on the next emission."""
        with self._lock:
            self._resolved = self._defaults is None
            self._set(())

    def emit(self, event: Event) -> None:
        """Call every listener with ``event``; a listener that raises is logged and skipped."""
        if not self._resolved:
            self._resolve()
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("buttress listener %r failed on %r", listener, event)

    def emit_prebuilt(self, event: Event) -> None:
        """:meth:`emit` for an event a strategy built once and emits on every call.

        Each listener is asked once per event (and again whenever the listeners change)
        what it will do with it: a listener with ``prepare(event)`` returns an action to
        run in its place, or ``None`` when the event is nothing to it; any other listener
        is called with the event as by :meth:`emit`. A success counted on every call then
        costs the counter's increment, not a dispatch through every listener. The event
        must not change after it is first emitted (events are frozen).
        """
        if not self._resolved:
            self._resolve()
        prepared = self._prepared.get(id(event))
        listeners = self._listeners
        if prepared is None or prepared[0] is not event or prepared[1] is not listeners:
            actions = tuple(
                action for action in (_prepare(x, event) for x in listeners) if action is not None
            )
            if len(self._prepared) < _MAX_PREPARED or prepared is not None:
                # Keeping the event keeps its id from being reused while it is cached.
                self._prepared[id(event)] = (event, listeners, actions)
        else:
            actions = prepared[2]
        for action in actions:
            try:
                action()
            except Exception:
                _log.exception("buttress listener action %r failed on %r", action, event)

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Event]]:
        """Collect the events emitted inside the ``with`` block into a list.

        >>> with default_registry.capture() as events:
        ...     pass
        >>> events
        []
        """
        events: list[Event] = []
        listener: Listener = events.append
        self.add(listener)
        try:
            yield events
        finally:
            self.remove(listener)

    def __repr__(self) -> str:
        return f"<Registry listeners={len(self._listeners)} resolved={self._resolved}>"


default_registry = Registry(_telemetry_defaults)
"""The registry every strategy uses unless it is given another."""
