"""Starting spans: the SDK's own ``start_span``, except for the spans its sampler drops.

Every request, job and outbound call starts a span, and at production sampling rates
(1 % of root requests, say) almost all of them are dropped: the SDK still runs its whole
start path for those (the sampler's result objects, the parent looked up three times,
trace flags built twice), which measured as a quarter of the middleware's cost per
unsampled request. :class:`SpanStarter` takes the decision the SDK would take, with the
same inputs, and makes the dropped span itself: a ``NonRecordingSpan`` whose context holds
what the SDK's would (trace id, a new span id, trace flags, the parent's trace state), so
propagation downstream is unchanged. Every span that records is started by the SDK.

It does so only for samplers whose decision it can compute exactly: the SDK's
``ALWAYS_ON``/``ALWAYS_OFF``, ``TraceIdRatioBased`` and ``ParentBased`` over those (what
``OTEL_TRACES_SAMPLER`` builds), on the SDK's own ``Tracer`` with its internal metrics off.
Any other tracer or sampler goes to ``start_span`` every time. tests/telemetry/
test_sampling.py checks the two paths give the same span contexts, against the SDK
versions pip installs and the oldest pyproject allows.

A sampled root span needs the trace id its decision was taken on: the starter hands that
id to the tracer's id generator for the one ``start_span`` call that follows (a
per-thread slot, emptied whatever happens), so the SDK records the trace the decision was
made for rather than drawing a new one (which its sampler would judge again: sampling
``rate`` squared).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.util.types import Attributes

__all__ = ["SpanStarter"]

_TRACE_ID_LIMIT: Final = (1 << 64) - 1
_ALL: Final = 1 << 64  # a bound every trace id is below: always sampled
# W3C Trace Context level 2: the trace id's right 7 bytes are random (newer SDKs set it).
_RANDOM_FLAG: Final[int] = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_installing = threading.Lock()


class _Plan:
    """What one SDK tracer's sampler decides, as trace-id bounds, and how to hand an id over.

    A bound ``b`` samples the trace ids whose lower 64 bits are below ``b``: 0 never,
    ``_ALL`` always, a ratio sampler's own bound otherwise, exactly as the SDK compares.
    """

    __slots__ = (
        "enabled",
        "handoff",
        "ids",
        "local_not_sampled",
        "local_sampled",
        "random_flag",
        "remote_not_sampled",
        "remote_sampled",
        "root",
        "tracer",
    )

    def __init__(
        self,
        tracer: trace.Tracer,
        bounds: tuple[int, int, int, int, int],
        ids: IdGenerator,
        handoff: _HandOff | None,
    ) -> None:
        self.tracer = tracer
        (
            self.root,
            self.remote_sampled,
            self.remote_not_sampled,
            self.local_sampled,
            self.local_not_sampled,
        ) = bounds
        self.ids = ids
        self.handoff = handoff
        random = getattr(ids, "is_trace_id_random", None)
        self.random_flag = _RANDOM_FLAG if random is not None and random() else 0
        enabled = getattr(tracer, "_is_enabled", None)  # tracer configs: newer SDKs only
        self.enabled = enabled if callable(enabled) else None

    def dropped(self, trace_id: int, flags: int, trace_state: TraceState | None) -> Span | None:
        """The span the SDK makes for a dropped one; ``None`` when the tracer is disabled.

        A disabled tracer (tracer configs, newer SDKs) is left to the SDK, which answers
        with its parent's context.
        """
        enabled = self.enabled
        if enabled is not None and not enabled():
            return None
        span_id = self.ids.generate_span_id()
        return NonRecordingSpan(
            SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state)
        )


class SpanStarter:
    """``tracer.start_span`` for one instrumentation scope, dropped spans made here.

    ``tracer_provider=None`` follows the global provider, including one set after this
    starter was made (as ``trace.get_tracer`` does).
    """

    def __init__(
        self,
        name: str,
        version: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._name = name
        self._version = version
        self._fixed = tracer_provider is not None
        self._refresh(
            tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        )

    def _refresh(
        self, provider: trace.TracerProvider
    ) -> tuple[trace.TracerProvider, trace.Tracer, _Plan | None]:
        tracer = trace.get_tracer(self._name, self._version, provider)
        # One tuple, swapped whole: a thread never pairs one provider's tracer with
        # another's plan.
        state = self._state = (provider, tracer, _plan_for(tracer))
        return state

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer spans that record are started with."""
        return self._current()[1]

    def _current(self) -> tuple[trace.TracerProvider, trace.Tracer, _Plan | None]:
        state = self._state
        if not self._fixed:
            provider = trace.get_tracer_provider()  # one set after start-up is followed
            if provider is not state[0]:
                state = self._refresh(provider)
        return state

    def start(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] | None = None,
        attributes: Attributes = None,
    ) -> Span:
        """A span as ``tracer.start_span`` would start it (not made current)."""
        state = self._state  # _current(), inline: this runs for every span
        if not self._fixed:
            provider = trace.get_tracer_provider()
            if provider is not state[0]:
                state = self._refresh(provider)
        _, tracer, plan = state
        if plan is not None:
            parent = trace.get_current_span(context).get_span_context()
            if parent.is_valid:
                flags = parent.trace_flags
                if parent.is_remote:
                    bound = plan.remote_sampled if flags.sampled else plan.remote_not_sampled
                else:
                    bound = plan.local_sampled if flags.sampled else plan.local_not_sampled
                # Below the bound the SDK decides the same from the same parent: it
                # records this one.
                if parent.trace_id & _TRACE_ID_LIMIT >= bound:
                    dropped = plan.dropped(
                        parent.trace_id, flags & _RANDOM_FLAG, parent.trace_state
                    )
                    if dropped is not None:
                        return dropped
            elif plan.root < _ALL:  # else every root is recorded: nothing to decide here
                trace_id = plan.ids.generate_trace_id()
                handoff = plan.handoff  # present whenever some roots are sampled
                if handoff is not None and trace_id & _TRACE_ID_LIMIT < plan.root:
                    handoff.hold(trace_id)
                    try:
                        return tracer.start_span(
                            name, context=context, kind=kind, links=links, attributes=attributes
                        )
                    finally:
                        handoff.release()
                dropped = plan.dropped(trace_id, plan.random_flag, None)
                if dropped is not None:
                    return dropped
        return tracer.start_span(
            name, context=context, kind=kind, links=links, attributes=attributes
        )


def _plan_for(tracer: trace.Tracer) -> _Plan | None:
    """The plan for an SDK tracer whose sampler is one of the SDK's own, else ``None``."""
    try:
        from opentelemetry.sdk.trace import Tracer as SDKTracer
    except ImportError:  # pragma: no cover - the SDK is a dependency; an API-only install
        return None
    if type(tracer) is not SDKTracer:
        return None
    metrics = getattr(tracer, "_tracer_metrics", None)
    if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
        return None  # the SDK counts every span it starts, dropped ones too
    bounds = _bounds(tracer.sampler)
    if bounds is None or min(bounds) >= _ALL:
        return None  # unknown, or every span is recorded: the SDK's to start
    with _installing:  # two starters of one tracer must share one hand-off
        ids = tracer.id_generator
        if isinstance(ids, _HandOff):  # another starter of the same tracer installed it
            handoff: _HandOff | None = ids
            ids = ids.inner
        elif 0 < bounds[0] < _ALL:
            handoff = _HandOff(ids)
            # Duck-typed (the SDK calls these three methods), so importing the middleware
            # does not import the SDK.
            tracer.id_generator = cast("IdGenerator", handoff)
        else:
            handoff = None
    return _Plan(tracer, bounds, ids, handoff)


def _bounds(sampler: object) -> tuple[int, int, int, int, int] | None:
    """(root, remote sampled, remote not sampled, local sampled, local not sampled)."""
    from opentelemetry.sdk.trace import sampling

    if type(sampler) in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio):
        found: list[int] = []
        for attribute in (
            "_root",
            "_remote_parent_sampled",
            "_remote_parent_not_sampled",
            "_local_parent_sampled",
            "_local_parent_not_sampled",
        ):
            bound = _bound(getattr(sampler, attribute, None))
            if bound is None:
                return None
            found.append(bound)
        root, remote_sampled, remote_not, local_sampled, local_not = found
        return root, remote_sampled, remote_not, local_sampled, local_not
    bound = _bound(sampler)
    return None if bound is None else (bound, bound, bound, bound, bound)


def _bound(sampler: object) -> int | None:
    from opentelemetry.sdk.trace import sampling

    if sampler is sampling.ALWAYS_ON:
        return _ALL
    if sampler is sampling.ALWAYS_OFF:
        return 0
    if type(sampler) is sampling.StaticSampler:
        decision = getattr(sampler, "_decision", None)
        if decision is sampling.Decision.RECORD_AND_SAMPLE:
            return _ALL
        if decision is sampling.Decision.DROP:
            return 0
        return None  # RECORD_ONLY: recorded, not sampled; the SDK's to make
    if type(sampler) is sampling.TraceIdRatioBased:
        bound = sampler.bound
        return bound if isinstance(bound, int) else None
    return None


class _HandOff:
    """The tracer's id generator, handing out one held trace id to the next draw.

    The starter holds the id its sampling decision was taken on, calls ``start_span``
    (whose first draw, on the same thread, takes it) and releases the slot whatever
    happened, so no other span ever gets that id.
    """

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner
        self._held = threading.local()

    def hold(self, trace_id: int) -> None:
        self._held.trace_id = trace_id

    def release(self) -> None:
        self._held.__dict__.pop("trace_id", None)

    def generate_trace_id(self) -> int:
        held: int | None = self._held.__dict__.pop("trace_id", None)
        return held if held is not None else self.inner.generate_trace_id()

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def is_trace_id_random(self) -> bool:
        random = getattr(self.inner, "is_trace_id_random", None)
        return bool(random()) if random is not None else False
