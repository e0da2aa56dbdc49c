"""SpanStarter: the spans it makes itself are those the SDK's start_span would make."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

from buttress.telemetry._sampling import SpanStarter, _HandOff


class _Seeded(IdGenerator):
    """Ids from a seeded generator, so two providers draw the same sequence."""

    def __init__(self, seed: int, random_ids: bool = True) -> None:
        self._random = random.Random(seed)
        self._random_ids = random_ids

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def is_trace_id_random(self) -> bool:
        return self._random_ids


class _Custom(Sampler):
    """A sampler the starter cannot read: every decision must come from it."""

    def __init__(self) -> None:
        self.calls = 0

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        self.calls += 1
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "custom"


SAMPLERS: dict[str, Sampler] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "ratio": TraceIdRatioBased(0.5),
    "ratio_none": TraceIdRatioBased(0.0),
    "ratio_all": TraceIdRatioBased(1.0),
    "parent_off": ParentBased(ALWAYS_OFF),
    "parent_on": ParentBased(ALWAYS_ON),
    "parent_ratio": ParentBased(TraceIdRatioBased(0.25)),
    "parentbased_traceidratio": ParentBasedTraceIdRatio(0.5),
    "parent_inverted": ParentBased(
        TraceIdRatioBased(0.5),
        remote_parent_sampled=ALWAYS_OFF,
        remote_parent_not_sampled=ALWAYS_ON,
        local_parent_sampled=TraceIdRatioBased(0.5),
        local_parent_not_sampled=StaticSampler(Decision.RECORD_AND_SAMPLE),
    ),
}

_STATE = TraceState([("vendor", "value")])


def _parents() -> dict[str, Context | None]:
    def context(remote: bool, sampled: bool, trace_id: int) -> Context:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        span = NonRecordingSpan(SpanContext(trace_id, 0xABC, remote, flags, _STATE))
        return trace.set_span_in_context(span, Context())

    low, high = 0x1F << 64 | 0x10, 0x2F << 64 | (0xF << 60)  # below / above every ratio's bound
    return {
        "none": None,
        "empty": Context(),
        "remote_sampled": context(True, True, low),
        "remote_not_sampled": context(True, False, low),
        "remote_not_sampled_high": context(True, False, high),
        "local_sampled": context(False, True, high),
        "local_not_sampled": context(False, False, low),
        "local_not_sampled_high": context(False, False, high),
        "invalid": trace.set_span_in_context(trace.INVALID_SPAN, Context()),
    }


def _provider(sampler: Sampler, seed: int, random_ids: bool = True) -> TracerProvider:
    return TracerProvider(sampler=sampler, id_generator=_Seeded(seed, random_ids))


def _shape(span: trace.Span) -> tuple[object, ...]:
    ctx = span.get_span_context()
    return (
        span.is_recording(),
        ctx.trace_id,
        ctx.span_id,
        int(ctx.trace_flags),
        ctx.is_remote,
        tuple(ctx.trace_state.items()),
        type(span).__name__ if not span.is_recording() else "recording",
    )


@pytest.mark.parametrize("random_ids", [True, False])
@pytest.mark.parametrize("parent", sorted(_parents()))
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_same_spans_as_the_sdk(sampler: str, parent: str, random_ids: bool) -> None:
    context = _parents()[parent]
    theirs = _provider(SAMPLERS[sampler], 7, random_ids).get_tracer("t")
    starter = SpanStarter("t", tracer_provider=_provider(SAMPLERS[sampler], 7, random_ids))
    for _ in range(40):  # the same id sequence on both sides: every span must match
        expected = theirs.start_span("GET", context=context, kind=SpanKind.SERVER)
        got = starter.start("GET", context, SpanKind.SERVER)
        assert _shape(got) == _shape(expected)


RECORD_ALL = {"always_on", "ratio_all"}


def test_the_plan_covers_the_sdks_samplers() -> None:
    # Otherwise the comparison above would only compare the SDK with itself. Samplers
    # that record every span have nothing to decide here: the SDK starts them all.
    for name, sampler in SAMPLERS.items():
        starter = SpanStarter("t", tracer_provider=TracerProvider(sampler=sampler))
        assert (starter._state[2] is None) is (name in RECORD_ALL), name


def _recorded(sampler: Sampler, count: int) -> tuple[InMemorySpanExporter, int]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=_Seeded(11))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    starter = SpanStarter("t", tracer_provider=provider)
    recorded = 0
    for _ in range(count):
        span = starter.start("GET", None, SpanKind.SERVER)
        recorded += span.is_recording()
        span.end()
    return exporter, recorded


def test_a_ratio_samples_its_rate_of_roots_each_on_the_id_it_was_judged_by() -> None:
    sampler = ParentBased(TraceIdRatioBased(0.3))
    exporter, recorded = _recorded(sampler, 4000)
    # 1,200 expected; a rate squared (a second decision on a new id) would give 360.
    assert 1080 <= recorded <= 1320
    spans = exporter.get_finished_spans()
    assert len(spans) == recorded
    bound = TraceIdRatioBased(0.3).bound
    for span in spans:
        assert span.context is not None
        assert span.context.trace_id & ((1 << 64) - 1) < bound
    assert len({s.context.trace_id for s in spans if s.context is not None}) == recorded


class _Failing(SpanProcessor):
    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        raise RuntimeError("processor failed")


def test_a_failed_start_hands_its_trace_id_to_nobody() -> None:
    starter = SpanStarter("t", tracer_provider=TracerProvider(sampler=TraceIdRatioBased(0.5)))
    # The hand-off slot is emptied even when start_span raises.
    plan = starter._state[2]
    assert plan is not None
    handoff = plan.handoff
    assert isinstance(handoff, _HandOff)
    tracer = plan.tracer
    original = tracer.start_span

    def failing(*args: object, **kwargs: object) -> trace.Span:
        raise RuntimeError("start failed")

    tracer.start_span = failing  # type: ignore[method-assign]
    started = 0
    for _ in range(64):
        try:
            starter.start("GET")
        except RuntimeError:
            started += 1
    assert started > 0  # some roots were sampled, and their start failed
    tracer.start_span = original  # type: ignore[method-assign]
    drawn = {handoff.generate_trace_id() for _ in range(50)}
    assert len(drawn) == 50


def test_the_held_id_stays_on_its_thread() -> None:
    handoff = _HandOff(_Seeded(5))
    handoff.hold(42)
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(handoff.generate_trace_id()))
    thread.start()
    thread.join()
    assert seen[0] != 42
    assert handoff.generate_trace_id() == 42
    assert handoff.generate_trace_id() != 42  # taken once


def test_an_unknown_sampler_decides_every_span() -> None:
    custom = _Custom()
    starter = SpanStarter("t", tracer_provider=TracerProvider(sampler=custom))
    assert starter._state[2] is None
    for _ in range(5):
        assert not starter.start("GET").is_recording()
    assert custom.calls == 5


def test_a_subclassed_sampler_is_not_read() -> None:
    class Ratio(TraceIdRatioBased):
        def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
            return SamplingResult(Decision.RECORD_AND_SAMPLE)

    starter = SpanStarter("t", tracer_provider=TracerProvider(sampler=Ratio(0.0)))
    assert starter._state[2] is None
    assert starter.start("GET").is_recording()


def test_the_sdks_span_metrics_keep_every_span(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the SDK's own span metrics on it counts dropped spans too: leave them to it.
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    if getattr(tracer, "_tracer_metrics", None) is None:
        assert SpanStarter("t", tracer_provider=TracerProvider())._state[2] is not None
        return  # an SDK without span metrics: nothing to leave to it
    assert SpanStarter("t", tracer_provider=TracerProvider(sampler=ALWAYS_OFF))._state[2] is None


def test_a_disabled_tracer_is_left_to_the_sdk() -> None:
    starter = SpanStarter("t", tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    plan = starter._state[2]
    assert plan is not None
    parent = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(5, 6, True, TraceFlags(TraceFlags.DEFAULT))), Context()
    )
    if plan.enabled is None:  # an SDK without tracer configs
        assert not hasattr(plan.tracer, "_is_enabled")
        return
    from opentelemetry.sdk import trace as sdk_trace

    plan.tracer._set_tracer_config(sdk_trace._TracerConfig(is_enabled=False))  # type: ignore[attr-defined]
    span = starter.start("GET", parent)
    # The SDK's disabled tracer hands back the parent's context, not a new span id.
    assert span.get_span_context().span_id == 6


@pytest.fixture
def global_provider() -> Iterator[None]:
    saved = trace._TRACER_PROVIDER
    saved_once = trace._TRACER_PROVIDER_SET_ONCE._done
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    yield
    trace._TRACER_PROVIDER = saved
    trace._TRACER_PROVIDER_SET_ONCE._done = saved_once


@pytest.mark.usefixtures("global_provider")
def test_follows_a_global_provider_set_later() -> None:
    starter = SpanStarter("t")
    assert not starter.start("GET").is_recording()  # no provider yet: the API's no-op
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    span = starter.start("GET")
    assert span.is_recording()
    span.end()
    finished: Sequence[ReadableSpan] = exporter.get_finished_spans()
    assert [s.name for s in finished] == ["GET"]
    # The tracer spans that record come from: the provider's own (older SDKs make a new
    # Tracer per get_tracer call, so it is compared by what it is, not by identity).
    from opentelemetry.sdk.trace import Tracer

    tracer = starter.tracer
    assert isinstance(tracer, Tracer)
    assert tracer.span_processor is provider._active_span_processor


def test_starters_of_one_tracer_hand_their_ids_to_the_tracers_generator() -> None:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    starters = [SpanStarter("t", tracer_provider=provider) for _ in range(3)]
    for starter in starters:
        plan = starter._state[2]
        assert plan is not None
        # Whoever installed it, the held id goes where the SDK draws from.
        assert getattr(plan.tracer, "id_generator", None) is plan.handoff
        assert not isinstance(plan.ids, _HandOff)
