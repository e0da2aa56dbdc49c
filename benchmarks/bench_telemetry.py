"""What observing one resilience event costs: metrics, span events, log events.

The peer way to record a labelled Prometheus metric (stamina's hook, most hand-written
instrumentation) calls ``labels(...)`` on every event; our listener caches the children.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter

from benchmarks._harness import compare_sync, report
from buttress.events import Registry, RetryScheduled
from buttress.telemetry._listeners import LogListener, PrometheusListener, SpanListener


def main(quick: bool = False) -> str:
    number = 2_000 if quick else 50_000
    event = RetryScheduled("payments", 1, 0.1, "ConnectError")

    empty = Registry()
    peer_counter = Counter(
        "peer_retries_total", "peer", ["policy", "error_type"], registry=CollectorRegistry()
    )
    ours = PrometheusListener(CollectorRegistry())

    def labels_each_time() -> None:
        peer_counter.labels(event.name, event.error_type).inc()

    quiet_logger = logging.getLogger("bench.buttress.quiet")
    quiet_logger.setLevel(logging.WARNING)  # RetryScheduled is INFO: filtered out
    quiet_logger.propagate = False
    everything = Registry()
    for listener in (
        PrometheusListener(CollectorRegistry()),
        SpanListener(),
        LogListener(quiet_logger),
    ):
        everything.add(listener)

    metrics = compare_sync(
        {
            "emit, no listener": lambda: empty.emit(event),
            "labels().inc() each time (peer)": labels_each_time,
            "buttress Prometheus listener": lambda: ours(event),
            "emit, all default listeners, no span": lambda: everything.emit(event),
        },
        number=number,
    )

    provider = TracerProvider()  # recording spans, exported nowhere
    tracer = provider.get_tracer("bench")
    spans = SpanListener()
    with tracer.start_as_current_span("call") as span:
        # Span events pile up on the one span; bounded by the number of calls timed.
        in_span = compare_sync(
            {
                "no span listener": lambda: None,
                "span event on the current span": lambda: spans(event),
            },
            number=number // 10,
            rounds=3,
        )
    del span
    provider.shutdown()
    return (
        report(
            "telemetry: one retry event into Prometheus",
            metrics,
            baseline="emit, no listener",
            against="labels().inc() each time (peer)",
        )
        + "\n"
        + report("telemetry: one span event", in_span, baseline="no span listener")
    )
