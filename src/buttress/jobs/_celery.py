"""Celery, observed through its signals: ``buttress.jobs.instrument_celery(app)``.

- ``before_task_publish``: a producer span, then trace context, correlation id and the
  remaining deadline written into the task message's headers;
- ``task_prerun``: the consumer side of :class:`MessageObserver` (span, ids, deadline);
- ``task_retry`` / ``task_failure``: the outcome, and on a final failure the dead-letter
  callback (``max_deliveries`` once Celery's retries ran out, else ``non_retryable``);
- ``task_postrun``: the delivery is recorded and the context reset.

Celery itself is imported only when this module is, so ``import buttress.jobs`` is cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from celery import signals
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .._deadline import Clock
from ..telemetry import _names as n
from ..telemetry._sampling import SpanStarter
from ._consumer import DeadLetter
from ._headers import Trust, inject
from ._observer import MessageObserver, Observed

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .._trust import TrustedPeers

__all__ = ["CeleryInstrumentation", "instrument_celery"]

_log = logging.getLogger("buttress.jobs")
_SYSTEM = "celery"
# Our header names, and Celery's attribute names for them on task.request.
_READ = (
    n.HEADER_TRACEPARENT,
    n.HEADER_TRACESTATE,
    "baggage",
    n.MESSAGE_REQUEST_ID_HEADER,
    n.MESSAGE_DEADLINE_HEADER,
)


class CeleryInstrumentation:
    """The signal receivers of one Celery app; :meth:`uninstrument` disconnects them.

    Per-task state is kept by task id between ``task_prerun`` and ``task_postrun`` (Celery
    hands the two signals nothing else in common); entries leave at ``task_postrun``.
    """

    def __init__(
        self,
        app: Any,
        *,
        trusted_producers: Trust,
        present: TrustedPeers | None,
        dead_letter: Callable[[DeadLetter], object] | None,
        continue_trace: Literal["trusted", "always", "never"],
        tracer_provider: TracerProvider | None,
        metrics_registry: CollectorRegistry | None,
        clock: Clock,
    ) -> None:
        self._app = app
        self._trust = trusted_producers
        self._present = present
        self._dead_letter = dead_letter
        self._continue = continue_trace
        self._tracer_provider = tracer_provider
        self._registry = metrics_registry
        self._clock = clock
        self._spans = SpanStarter("buttress.jobs", tracer_provider=tracer_provider)
        self._observers: dict[str, MessageObserver] = {}
        self._running: dict[str, tuple[Observed, MessageObserver]] = {}
        self._ended: dict[str, tuple[str, BaseException | None, str | None]] = {}
        self._lock = threading.Lock()
        self._extra = (present.header,) if present is not None and present.header else ()
        trust_header = getattr(trusted_producers, "header", None)
        self._read = (*_READ, trust_header) if trust_header else _READ
        self._uid = f"buttress-{id(self)}"
        signals.before_task_publish.connect(self._publish, weak=False, dispatch_uid=self._uid)
        signals.task_prerun.connect(self._prerun, weak=False, dispatch_uid=self._uid)
        signals.task_retry.connect(self._retry, weak=False, dispatch_uid=self._uid)
        signals.task_failure.connect(self._failure, weak=False, dispatch_uid=self._uid)
        signals.task_postrun.connect(self._postrun, weak=False, dispatch_uid=self._uid)

    def uninstrument(self) -> None:
        """Disconnect every receiver (tasks already running finish unobserved)."""
        for signal in (
            signals.before_task_publish,
            signals.task_prerun,
            signals.task_retry,
            signals.task_failure,
            signals.task_postrun,
        ):
            signal.disconnect(dispatch_uid=self._uid)

    def _observer(self, task_name: str) -> MessageObserver:
        observer = self._observers.get(task_name)
        if observer is None:
            with self._lock:
                observer = self._observers.get(task_name)
                if observer is None:
                    # One per registered task: the destination label stays bounded.
                    observer = self._observers[task_name] = MessageObserver(
                        task_name,
                        system=_SYSTEM,
                        trusted_producers=self._trust,
                        continue_trace=self._continue,
                        tracer_provider=self._tracer_provider,
                        metrics_registry=self._registry,
                        clock=self._clock,
                    )
        return observer

    def _ours(self, task: Any) -> bool:
        return getattr(task, "app", None) is self._app and isinstance(
            getattr(task, "name", None), str
        )

    # --- receivers ----------------------------------------------------------------------------

    def _publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        if not isinstance(headers, dict) or not isinstance(sender, str):
            return  # protocol 1 messages carry no headers of their own
        attributes: dict[str, Any] = {
            n.ATTR_MESSAGING_SYSTEM: _SYSTEM,
            n.ATTR_MESSAGING_DESTINATION: sender,
            n.ATTR_MESSAGING_OPERATION_TYPE: "send",
            n.ATTR_MESSAGING_OPERATION_NAME: "send",
        }
        task_id = headers.get("id")
        if isinstance(task_id, str):
            attributes[n.ATTR_MESSAGING_MESSAGE_ID] = task_id
        # Not made current: the span lives for the injection only, so no attach/detach.
        span = self._spans.start(f"send {sender}", None, SpanKind.PRODUCER, None, attributes)
        try:
            inject(
                headers,
                present=self._present,
                clock=self._clock,
                context=trace.set_span_in_context(span),
            )
        finally:
            span.end()

    def _prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
        task = task if task is not None else sender
        if not self._ours(task) or not isinstance(task_id, str):
            return
        request = task.request
        # A worker's request holds the message headers as attributes; a task run with
        # apply(headers=...) (eager) keeps them in request.headers.
        nested = getattr(request, "headers", None)
        nested = nested if isinstance(nested, dict) else {}
        headers = {key: getattr(request, key, None) or nested.get(key) for key in self._read}
        retries = getattr(request, "retries", 0) or 0
        info = getattr(request, "delivery_info", None) or {}
        redelivered = bool(info.get("redelivered")) if isinstance(info, dict) else False
        delivery = 1 + (retries if isinstance(retries, int) else 0) + (1 if redelivered else 0)
        observer = self._observer(task.name)
        observed = observer.begin(headers, message_id=task_id, delivery=delivery)
        with self._lock:
            self._running[task_id] = (observed, observer)

    def _retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        task_id = getattr(request, "id", None)
        if isinstance(task_id, str) and task_id in self._running:
            error = reason if isinstance(reason, BaseException) else None
            with self._lock:
                self._ended[task_id] = (n.JOB_RETRY, error, None)

    def _failure(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, **kwargs: Any
    ) -> None:
        running = self._running.get(task_id) if isinstance(task_id, str) else None
        if running is None:
            return
        observed = running[0]
        retries = getattr(getattr(sender, "request", None), "retries", 0) or 0
        reason = n.DEAD_LETTER_MAX_DELIVERIES if retries else n.DEAD_LETTER_NON_RETRYABLE
        error = exception if isinstance(exception, BaseException) else None
        with self._lock:
            self._ended[task_id] = (n.JOB_DEAD_LETTER, error, reason)
        if self._dead_letter is not None:
            message = {"args": kwargs.get("args"), "kwargs": kwargs.get("kwargs")}
            letter = DeadLetter(
                getattr(sender, "name", "celery"),
                message,
                task_id,
                observed.delivery,
                reason,
                error,
            )
            try:
                self._dead_letter(letter)
            except Exception:
                _log.exception("dead_letter failed for task %s", task_id)

    def _postrun(
        self, sender: Any = None, task_id: Any = None, state: Any = None, **_: Any
    ) -> None:
        if not isinstance(task_id, str):
            return
        with self._lock:
            running = self._running.pop(task_id, None)
            ended = self._ended.pop(task_id, None)
        if running is None:
            return
        observed, observer = running
        if ended is not None:
            outcome, error, reason = ended
        elif state in ("SUCCESS", "IGNORED"):
            outcome, error, reason = n.JOB_SUCCESS, None, None
        else:
            outcome, error, reason = n.JOB_RETRY, None, None
        observer.end(observed, outcome, error, dead_letter_reason=reason)


def instrument_celery(
    app: Any,
    *,
    trusted_producers: Trust = None,
    present: TrustedPeers | None = None,
    dead_letter: Callable[[DeadLetter], object] | None = None,
    continue_trace: Literal["trusted", "always", "never"] = "trusted",
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
    clock: Clock = time.monotonic,
) -> CeleryInstrumentation:
    """Observe ``app``'s tasks, on both sides: producers and workers. One line, explicit.

    Workers believe a message's trace, request id and deadline only from
    ``trusted_producers`` (see docs/jobs.md); producers that must prove themselves send
    ``present``'s header. ``dead_letter`` hears of every task that failed for good.
    """
    from .._trust import check_trust

    return CeleryInstrumentation(
        app,
        trusted_producers=check_trust(trusted_producers),
        present=present,
        dead_letter=dead_letter,
        continue_trace=continue_trace,
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        clock=clock,
    )
