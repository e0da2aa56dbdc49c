"""One delivered message, observed: a consumer span, the ids, the deadline, metrics, a log line.

:meth:`MessageObserver.begin` extracts the producer's context (trusted or not), starts the
consumer span, binds the correlation id and the deadline; :meth:`MessageObserver.end`
records the outcome and resets every contextvar with its token. The per-message state is
the :class:`Observed` that ``begin`` returns, kept by the caller: nothing message-scoped
lives on the observer, so one serves any number of concurrent messages.
"""

from __future__ import annotations

import logging
import time
from contextvars import Token
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._args import check_name
from .._deadline import _DEADLINE, Clock, bind_deadline
from .._errors import ConfigurationError
from .._trust import check_trust
from ..telemetry import _names as n
from ..telemetry._correlation import correlation_id, new_correlation_id
from ..telemetry._sampling import SpanStarter
from ._headers import Headers, Trust, extract
from ._metrics import JobMetrics, job_metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider
    from prometheus_client import CollectorRegistry

__all__ = ["MessageObserver", "Observed", "job_logger"]

job_logger = logging.getLogger("buttress.jobs")
_OUTCOMES = frozenset(
    (n.JOB_SUCCESS, n.JOB_RETRY, n.JOB_DEAD_LETTER, n.JOB_DUPLICATE, n.JOB_EXPIRED)
)
_MAX_ID = 256  # longest message id put on a span or a log line


class Observed:
    """The state of one message between ``begin`` and ``end``."""

    __slots__ = ("delivery", "ended", "message_id", "request_id", "span", "start", "tokens")

    def __init__(self) -> None:
        self.span: Span | None = None
        self.tokens: tuple[Token[Any] | None, ...] = ()
        self.start = 0.0
        self.message_id: str | None = None
        self.delivery = 1
        self.request_id = ""
        self.ended = False


def _check_delivery(delivery: object) -> int:
    if isinstance(delivery, bool) or not isinstance(delivery, int) or delivery < 1:
        raise ConfigurationError(f"delivery must be an int >= 1 (1 = first), got {delivery!r}")
    return delivery


class MessageObserver:
    """Observes the messages of one destination (a queue, topic, stream or task name).

    ``trusted_producers`` says whose headers are believed (see docs/jobs.md): ``None``
    (nobody: a new trace linked to the producer's, a fresh request id, no deadline),
    ``"any"``, or a ``TrustedPeers`` with a header and secret that producers present.
    """

    __slots__ = (
        "_clock", "_group", "_metrics", "_registry", "_spans", "continue_trace", "destination",
        "log", "operation", "system", "trusted_producers",
    )  # fmt: skip

    def __init__(
        self,
        destination: str,
        *,
        system: str = "generic",
        operation: str = "process",
        consumer_group: str | None = None,
        trusted_producers: Trust = None,
        continue_trace: Literal["trusted", "always", "never"] = "trusted",
        log: bool = True,
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.destination = check_name(destination, "destination")
        self.system = check_name(system, "system")
        self.operation = check_name(operation, "operation")
        self._group = consumer_group
        self.trusted_producers = check_trust(trusted_producers)
        if continue_trace not in ("trusted", "always", "never"):
            raise ConfigurationError(
                f'continue_trace must be "trusted", "always" or "never", got {continue_trace!r}'
            )
        self.continue_trace = continue_trace
        self.log = log
        self._spans = SpanStarter("buttress.jobs", tracer_provider=tracer_provider)
        self._registry = metrics_registry
        self._metrics: JobMetrics | None = None
        self._clock = clock

    @property
    def metrics(self) -> JobMetrics:
        """The instruments this observer records into (made on first use)."""
        metrics = self._metrics
        if metrics is None:
            metrics = self._metrics = job_metrics(self._registry)
        return metrics

    def begin(
        self, headers: Headers | None, *, message_id: str | None = None, delivery: int = 1
    ) -> Observed:
        """Start observing a message: span, correlation id and deadline bound until ``end``."""
        delivery = _check_delivery(delivery)
        found = extract(
            headers, trusted_producers=self.trusted_producers, continue_trace=self.continue_trace
        )
        observed = Observed()
        observed.delivery = delivery
        if message_id is not None:
            observed.message_id = str(message_id)[:_MAX_ID]
        attributes: dict[str, Any] = {
            n.ATTR_MESSAGING_SYSTEM: self.system,
            n.ATTR_MESSAGING_DESTINATION: self.destination,
            n.ATTR_MESSAGING_OPERATION_TYPE: "process",
            n.ATTR_MESSAGING_OPERATION_NAME: self.operation,
            n.ATTR_MESSAGE_DELIVERY: delivery,
            n.ATTR_PRODUCER_TRUSTED: found.trusted,
        }
        if observed.message_id is not None:
            attributes[n.ATTR_MESSAGING_MESSAGE_ID] = observed.message_id
        if self._group is not None:
            attributes[n.ATTR_MESSAGING_CONSUMER_GROUP] = self._group
        span = self._spans.start(
            f"{self.operation} {self.destination}",
            found.parent,
            SpanKind.CONSUMER,
            found.links or None,
            attributes,
        )
        observed.span = span
        otel_token = otel_context.attach(trace.set_span_in_context(span, found.parent))
        request_id = found.request_id
        if request_id is None:
            # As the middleware does: the trace id serves when nobody gave an id.
            span_context = span.get_span_context()
            request_id = (
                format(span_context.trace_id, "032x")
                if span_context.is_valid
                else new_correlation_id()
            )
        observed.request_id = request_id
        span.set_attribute(n.ATTR_REQUEST_ID, request_id)
        id_token = correlation_id.set(request_id)
        deadline_token = None if found.deadline is None else bind_deadline(found.deadline)
        observed.tokens = (deadline_token, id_token, otel_token)
        if delivery > 1:
            self.metrics.redeliveries.child(self.system, self.destination).inc()
        observed.start = self._clock()
        return observed

    def end(
        self,
        observed: Observed,
        outcome: str,
        error: BaseException | None = None,
        *,
        dead_letter_reason: str | None = None,
    ) -> None:
        """Record how the message ended and reset the context; later calls are ignored."""
        if observed.ended:
            return
        observed.ended = True
        try:
            self._record(observed, outcome, error, dead_letter_reason)
        finally:
            deadline_token, id_token, otel_token = observed.tokens
            if deadline_token is not None:
                _DEADLINE.reset(deadline_token)
            if id_token is not None:
                correlation_id.reset(id_token)
            if otel_token is not None:
                otel_context.detach(otel_token)

    def _record(
        self,
        observed: Observed,
        outcome: str,
        error: BaseException | None,
        reason: str | None,
    ) -> None:
        if outcome not in _OUTCOMES:
            outcome = n.JOB_RETRY  # an integration's unknown state: not lost, not a success
        duration = max(self._clock() - observed.start, 0.0)
        error_type = "" if error is None else type(error).__name__
        metrics = self.metrics
        metrics.duration.child(self.system, self.destination, outcome, error_type).observe(duration)
        if outcome in (n.JOB_DEAD_LETTER, n.JOB_EXPIRED):
            metrics.dead_lettered.child(
                self.system, self.destination, reason or n.DEAD_LETTER_NON_RETRYABLE
            ).inc()
        span = observed.span
        trace_id = span_id = None
        if span is not None:
            span.set_attribute(n.ATTR_OUTCOME, outcome)
            if error is not None:
                span.set_attribute(n.ATTR_ERROR_TYPE, error_type)
                span.record_exception(error)
            if outcome in (n.JOB_DEAD_LETTER, n.JOB_EXPIRED, n.JOB_RETRY) and error is not None:
                span.set_status(Status(StatusCode.ERROR, error_type))
            span_context = span.get_span_context()
            if span_context.is_valid:
                trace_id = format(span_context.trace_id, "032x")
                span_id = format(span_context.span_id, "016x")
            span.end()
        if self.log and job_logger.isEnabledFor(logging.INFO):
            extra: dict[str, object] = {
                n.LOG_KEY_DESTINATION: self.destination,
                n.LABEL_MESSAGING_SYSTEM: self.system,
                n.LOG_KEY_MESSAGE_ID: observed.message_id,
                n.LOG_KEY_DELIVERY: observed.delivery,
                n.LABEL_OUTCOME: outcome,
                n.LOG_KEY_DURATION_MS: round(duration * 1000.0, 3),
                n.LOG_KEY_REQUEST_ID: observed.request_id,
                n.LOG_KEY_TRACE_ID: trace_id,
                n.LOG_KEY_SPAN_ID: span_id,
            }
            if error_type:
                extra[n.LABEL_ERROR_TYPE] = error_type
            if reason is not None:
                extra[n.LABEL_REASON] = reason
            level = logging.INFO if error is None else logging.WARNING
            job_logger.log(level, n.EVENT_MESSAGE, extra=extra)
