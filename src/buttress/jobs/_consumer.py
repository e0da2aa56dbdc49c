"""A consumer for any broker client: observe, retry, dead-letter, and run each message once.

:meth:`Consumer.process` runs a handler for one delivered message and says what to do
with the message (:class:`Result`): acknowledge it, leave it for redelivery, or (already
done through ``dead_letter``) give up on it. The broker's own loop stays the caller's;
``process`` and ``process_async`` drive one flow of decisions and differ only in how
they call and wait.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .._args import ExceptionFilter, check_name, exception_matcher
from .._deadline import Clock, remaining
from .._errors import ConfigurationError
from ..telemetry import _names as n
from ._headers import Headers, Trust
from ._idempotency import (
    IDEMPOTENCY_OUTCOMES,
    AsyncIdempotencyStore,
    ClaimOutcome,
    IdempotencyStore,
    storage_key,
)
from ._metrics import job_metrics
from ._observer import MessageObserver, Observed

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from ..strategies import Retry

__all__ = ["Claim", "Consumer", "DeadLetter", "Idempotent", "Result"]

R = TypeVar("R")
M = TypeVar("M")
_PREFIX = "buttress:idempotency:"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message given up on, as handed to ``dead_letter``."""

    destination: str
    message: Any
    message_id: str | None
    delivery: int
    reason: str  # names.DEAD_LETTER_MAX_DELIVERIES, DEAD_LETTER_NON_RETRYABLE or JOB_EXPIRED
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class Result(Generic[R]):
    """How one delivery ended. ``ack`` says whether the broker may forget the message."""

    outcome: str  # names.JOB_SUCCESS, JOB_RETRY, JOB_DEAD_LETTER, JOB_DUPLICATE, JOB_EXPIRED
    value: R | None = None
    error: BaseException | None = None
    reason: str | None = None

    @property
    def ack(self) -> bool:
        """False only for ``retry``: leave the message (nack, requeue) for redelivery."""
        return self.outcome != n.JOB_RETRY


class Consumer:
    """Processing of the messages of one destination, observed and resilient.

    - ``retry``: a :func:`buttress.retry` policy wrapped around the handler, in process;
    - ``max_deliveries``: a message whose handler fails on its Nth delivery is
      dead-lettered; ``non_retryable`` errors are dead-lettered at once;
    - ``dead_letter``: called with a :class:`DeadLetter` (publish it to a dead-letter
      queue); if it fails, the message is left for redelivery instead, never lost;
    - ``idempotency``: a claim store; messages with a ``message_id`` then run once;
    - ``honour_deadline``: a message whose producer's deadline has passed is not run.

    The remaining options are :class:`MessageObserver`'s (trust, system, tracer, registry).
    """

    __slots__ = (
        "_dead_letter", "_deadline", "_idempotency", "_max", "_non_retryable", "_observer",
        "_retry", "destination",
    )  # fmt: skip

    def __init__(
        self,
        destination: str,
        *,
        system: str = "generic",
        consumer_group: str | None = None,
        max_deliveries: int = 5,
        non_retryable: ExceptionFilter = (),
        retry: Retry | None = None,
        dead_letter: Callable[[DeadLetter], object] | None = None,
        idempotency: IdempotencyStore | AsyncIdempotencyStore | None = None,
        honour_deadline: bool = True,
        trusted_producers: Trust = None,
        continue_trace: Literal["trusted", "always", "never"] = "trusted",
        log: bool = True,
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.destination = check_name(destination, "destination")
        if isinstance(max_deliveries, bool) or not isinstance(max_deliveries, int):
            raise ConfigurationError(f"max_deliveries must be an int >= 1, got {max_deliveries!r}")
        if max_deliveries < 1:
            raise ConfigurationError(f"max_deliveries must be an int >= 1, got {max_deliveries!r}")
        self._max = max_deliveries
        self._non_retryable = (
            None if non_retryable == () else exception_matcher(non_retryable, "non_retryable")
        )
        if retry is not None and not callable(retry):
            raise ConfigurationError(f"retry must be a buttress.retry(...) policy, got {retry!r}")
        self._retry = retry
        if dead_letter is not None and not callable(dead_letter):
            raise ConfigurationError(f"dead_letter must be callable, got {dead_letter!r}")
        self._dead_letter = dead_letter
        self._idempotency = idempotency
        self._deadline = honour_deadline
        self._observer = MessageObserver(
            destination,
            system=system,
            consumer_group=consumer_group,
            trusted_producers=trusted_producers,
            continue_trace=continue_trace,
            log=log,
            tracer_provider=tracer_provider,
            metrics_registry=metrics_registry,
            clock=clock,
        )

    @property
    def observer(self) -> MessageObserver:
        """The observer of this consumer's messages (spans, metrics, log lines)."""
        return self._observer

    # --- decisions shared by the twins -----------------------------------------------------

    def _expired(self) -> bool:
        left = remaining()
        return self._deadline and left is not None and left <= 0

    def _reason(self, error: Exception, delivery: int) -> str | None:
        """Why a failed message is given up on, or ``None`` to leave it for redelivery."""
        if self._non_retryable is not None and self._non_retryable(error):
            return n.DEAD_LETTER_NON_RETRYABLE
        if delivery >= self._max:
            return n.DEAD_LETTER_MAX_DELIVERIES
        return None

    def _letter(
        self, message: Any, observed: Observed, reason: str, error: BaseException | None
    ) -> DeadLetter:
        return DeadLetter(
            self.destination, message, observed.message_id, observed.delivery, reason, error
        )

    def _counted(self, claim: ClaimOutcome) -> ClaimOutcome:
        self._observer.metrics.idempotency.child(
            self.destination, IDEMPOTENCY_OUTCOMES[claim]
        ).inc()
        return claim

    def _key(self, message_id: str | None) -> str | None:
        if self._idempotency is None or message_id is None:
            return None
        return storage_key(_PREFIX, self.destination, str(message_id))

    # --- one flow, two drivers ---------------------------------------------------------------

    def _flow(
        self,
        handler: Callable[[Any], Any],
        message: Any,
        observed: Observed,
        message_id: str | None,
    ) -> _Flow:
        """What one delivery does, as a generator of calls for a driver to make.

        Each ``yield (fn, args)`` asks the driver to call ``fn(*args)`` (and, async, to
        await what it returns); the driver sends the value back, or throws what the call
        raised in at the ``yield``. So the decisions are written once, and
        :meth:`process` and :meth:`process_async` differ only in how they call and wait.
        """
        outcome, reason = n.JOB_RETRY, None
        error: BaseException | None = None
        key = self._key(message_id)
        store: Any = self._idempotency
        token = os.urandom(8).hex()
        held = False
        try:
            if self._expired():
                reason = n.JOB_EXPIRED
                outcome = yield from self._give_up(message, observed, reason, None)
                return Result(outcome, None, None, reason)
            if key is not None:
                try:
                    claim = self._counted((yield (store.claim, (key, token))))
                except Exception as exc:  # the store is down: run it later, not never
                    error = exc
                    return Result(outcome, None, exc)
                if claim == "duplicate":
                    outcome = n.JOB_DUPLICATE
                    return Result(outcome)
                if claim == "in_progress":
                    return Result(outcome)
                held = True
            try:
                call = self._retry(handler) if self._retry is not None else handler
                value = yield (call, (message,))
            except Exception as exc:
                error = exc
                if held:
                    held = False
                    with contextlib.suppress(Exception):  # else its lease runs out
                        yield (store.release, (key, token))
                reason = self._reason(exc, observed.delivery)
                if reason is not None:
                    outcome = yield from self._give_up(message, observed, reason, exc)
                return Result(outcome, None, exc, reason)
            if held:
                held = False
                # The work is done whatever the store says: a claim not marked done only
                # lets a redelivery run again once its lease is over.
                with contextlib.suppress(Exception):
                    yield (store.complete, (key, token))
            outcome = n.JOB_SUCCESS
            return Result(outcome, value)
        except BaseException as exc:
            error = exc
            outcome = n.JOB_RETRY
            raise
        finally:
            if held:
                with contextlib.suppress(Exception):
                    yield (store.release, (key, token))
            self._observer.end(observed, outcome, error, dead_letter_reason=reason)

    def _give_up(
        self, message: Any, observed: Observed, reason: str, error: BaseException | None
    ) -> Generator[_Call, Any, str]:
        final = n.JOB_EXPIRED if reason == n.JOB_EXPIRED else n.JOB_DEAD_LETTER
        if self._dead_letter is None:
            return final
        try:
            yield (self._dead_letter, (self._letter(message, observed, reason, error),))
        except Exception:
            return n.JOB_RETRY  # the dead-letter path failed: keep the message
        return final

    def process(
        self,
        handler: Callable[[M], R],
        message: M,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
        delivery: int = 1,
    ) -> Result[R]:
        """Run ``handler(message)`` for one delivery; see :class:`Result` for what follows."""
        observed = self._observer.begin(headers, message_id=message_id, delivery=delivery)
        flow = self._flow(handler, message, observed, message_id)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                fn, args = flow.send(sent) if thrown is None else flow.throw(thrown)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            sent, thrown = None, None
            try:
                sent = fn(*args)
                if inspect.isawaitable(sent):
                    _close(sent)
                    raise ConfigurationError(
                        f"{_name(fn)} returned an awaitable: use process_async"
                    )
            except BaseException as exc:  # handed to the flow, which decides
                thrown = exc

    async def process_async(
        self,
        handler: Callable[[M], Awaitable[R]],
        message: M,
        *,
        headers: Headers | None = None,
        message_id: str | None = None,
        delivery: int = 1,
    ) -> Result[R]:
        """The async twin of :meth:`process`: an async handler; store and dead letter either."""
        observed = self._observer.begin(headers, message_id=message_id, delivery=delivery)
        flow = self._flow(handler, message, observed, message_id)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                fn, args = flow.send(sent) if thrown is None else flow.throw(thrown)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            sent, thrown = None, None
            try:
                sent = fn(*args)
                if inspect.isawaitable(sent):
                    sent = await sent
            except BaseException as exc:  # handed to the flow, which decides
                thrown = exc


_Call = tuple[Callable[..., Any], tuple[Any, ...]]
_Flow = Generator[_Call, Any, "Result[Any]"]


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine never awaited: no warning
    if callable(close):
        close()


def _name(fn: Callable[..., Any]) -> str:
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return f"{type(owner).__name__}.{getattr(fn, '__name__', 'call')}"
    return getattr(fn, "__qualname__", repr(fn))


@dataclass(slots=True)
class Claim:
    """The claim :meth:`Idempotent.once` took: ``run`` says whether to do the work."""

    outcome: ClaimOutcome

    @property
    def run(self) -> bool:
        return self.outcome in ("first", "taken_over")


class Idempotent:
    """Run-once guard for code that is not a :class:`Consumer` (a Celery task body)::

        once = Idempotent(RedisIdempotency(redis_client), name="charge")
        with once.claim(self.request.id) as claim:
            if claim.run:
                charge_card(order)

    ``in_progress`` (another worker holds the lease) leaves ``run`` false: retry later.
    A block that raises releases the claim, so a redelivery runs again.
    """

    __slots__ = ("_registry", "_store", "name")

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        name: str,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self._store = store
        self.name = check_name(name)
        self._registry = metrics_registry

    @contextlib.contextmanager
    def claim(self, message_id: str) -> Iterator[Claim]:
        key = storage_key(_PREFIX, self.name, str(message_id))
        token = os.urandom(8).hex()
        outcome = self._store.claim(key, token)
        job_metrics(self._registry).idempotency.child(
            self.name, IDEMPOTENCY_OUTCOMES[outcome]
        ).inc()
        claim = Claim(outcome)
        if not claim.run:
            yield claim
            return
        try:
            yield claim
        except BaseException:
            with contextlib.suppress(Exception):
                self._store.release(key, token)
            raise
        self._store.complete(key, token)
