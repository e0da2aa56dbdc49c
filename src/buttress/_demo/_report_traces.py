"""The report's traces: the exported spans reduced to records, and the two waterfalls
(the slowest quote, and one whose call to pricing was retried) drawn from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """What the report needs of one exported span (times in nanoseconds)."""

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    service: str
    kind: str  # "server", "client", "internal", ...
    start: int
    end: int
    status: int | None  # http.response.status_code
    error: str | None  # error.type, or the status description of a failed span
    attempt: int  # 0 for the first attempt of a client call, then its resend count


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    service: str
    kind: str
    depth: int
    start_ms: float
    duration_ms: float
    failed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Waterfall:
    key: str
    title: str
    reading: str
    trace_id: str
    total_ms: float
    bars: tuple[Bar, ...]


def waterfalls(spans: Iterable[SpanRecord]) -> tuple[Waterfall, ...]:
    """The slowest quote's trace and a retried one's, when the run has them."""
    traces = _by_trace(spans)
    return tuple(w for w in (_slowest(traces), _retried(traces)) if w is not None)


def span_records(spans: Iterable[ReadableSpan]) -> list[SpanRecord]:
    """The SDK's finished spans, reduced to what the waterfalls draw."""
    records = []
    for span in spans:
        context = span.context
        if context is None or span.start_time is None or span.end_time is None:
            continue
        attributes = span.attributes or {}
        status = attributes.get("http.response.status_code")
        error = attributes.get("error.type")
        resend = attributes.get("http.request.resend_count")
        service = span.resource.attributes.get("service.name", "")
        records.append(
            SpanRecord(
                trace_id=context.trace_id,
                span_id=context.span_id,
                parent_id=span.parent.span_id if span.parent is not None else None,
                name=span.name,
                service=str(service),
                kind=span.kind.name.lower(),
                start=span.start_time,
                end=span.end_time,
                status=status if isinstance(status, int) else None,
                error=str(error) if error is not None else None,
                attempt=resend if isinstance(resend, int) else 0,
            )
        )
    return records


def _by_trace(spans: Iterable[SpanRecord]) -> dict[int, list[SpanRecord]]:
    traces: dict[int, list[SpanRecord]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def _root(trace: list[SpanRecord]) -> SpanRecord | None:
    ids = {s.span_id for s in trace}
    roots = [s for s in trace if s.kind == "server" and s.parent_id not in ids]
    return min(roots, key=lambda s: s.start) if roots else None


def _slowest(traces: Mapping[int, list[SpanRecord]]) -> Waterfall | None:
    rooted = [(root, trace) for trace in traces.values() if (root := _root(trace)) is not None]
    if not rooted:
        return None
    root, trace = max(rooted, key=lambda pair: pair[0].end - pair[0].start)
    return _waterfall(
        "trace-slowest",
        "Trace: the slowest quote",
        "The longest request of the run, from checkout's server span through each attempt's "
        "client span to pricing's server span. A gap before an attempt is a wait: for a "
        "place in the bulkhead, or the retry's backoff.",
        root,
        trace,
    )


def _retried(traces: Mapping[int, list[SpanRecord]]) -> Waterfall | None:
    best: tuple[tuple[int, int, int], SpanRecord, list[SpanRecord]] | None = None
    for trace in traces.values():
        root = _root(trace)
        clients = sorted((s for s in trace if s.kind == "client"), key=lambda s: s.start)
        if root is None or len(clients) < 2:
            continue
        # Prefer a quote the retry saved (its last attempt answered 200), then the most
        # attempts, then the earliest, so the choice is stable for one run.
        rank = (int(clients[-1].status == 200), len(clients), -root.start)
        if best is None or rank > best[0]:
            best = (rank, root, trace)
    if best is None:
        return None
    _, root, trace = best
    return _waterfall(
        "trace-retried",
        "Trace: a retried quote",
        "A quote whose call to pricing failed and was tried again: one client span per "
        "attempt, with the retry's backoff as the gap between them.",
        root,
        trace,
    )


def _waterfall(
    key: str, title: str, reading: str, root: SpanRecord, trace: list[SpanRecord]
) -> Waterfall:
    children: dict[int | None, list[SpanRecord]] = {}
    for span in trace:
        children.setdefault(span.parent_id, []).append(span)
    bars: list[Bar] = []

    def visit(span: SpanRecord, depth: int) -> None:
        below = sorted(children.get(span.span_id, ()), key=lambda s: s.start)
        peer = next((c.service for c in below if c.kind == "server"), "upstream")
        bars.append(_bar(span, depth, root.start, peer))
        for child in below:
            visit(child, depth + 1)

    visit(root, 0)
    end = max(s.end for s in trace)
    if end > root.end:  # an upstream that went on working after its caller gave up
        late = max(trace, key=lambda s: s.end)
        reading += (
            f" {late.service} went on working {(end - root.end) / 1e6:.0f} ms after "
            f"{root.service} had answered: nobody was waiting for it any more."
        )
    return Waterfall(
        key,
        title,
        reading,
        f"{root.trace_id:032x}",
        (end - root.start) / 1e6,
        tuple(bars),
    )


def _bar(span: SpanRecord, depth: int, origin: int, peer: str) -> Bar:
    if span.kind == "client":
        label = f"{span.service} -> {peer} {span.name}, attempt {span.attempt + 1}"
    else:
        label = f"{span.service} {span.name}"
    outcome = str(span.status) if span.status is not None else (span.error or "")
    failed = span.error is not None or (span.status is not None and span.status >= 500)
    duration = (span.end - span.start) / 1e6
    detail = f"{span.kind} span, {duration:.1f} ms" + (f", {outcome}" if outcome else "")
    return Bar(
        label=label,
        service=span.service,
        kind=span.kind,
        depth=depth,
        start_ms=(span.start - origin) / 1e6,
        duration_ms=duration,
        failed=failed,
        detail=detail,
    )
