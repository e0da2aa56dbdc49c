"""Per-message overhead of observing Celery tasks: buttress.jobs against OpenTelemetry's
celery instrumentation, in one process, interleaved.

One message is what both instrument: the publish (``apply_async`` to kombu's in-memory
broker: ``before_task_publish``, headers injected) and the run (``apply`` with the
message's headers: ``task_prerun``/``task_postrun``, the context extracted, a consumer
span). Both record spans into the same SDK tracer provider (no exporter: recording is
timed, not exporting); buttress also records its metrics into a Prometheus registry.
buttress's per-message log line is left on, at a level that drops it (as the access log
in bench_middleware), so what is timed is the decision, not stderr. Signals are global
in Celery, so each contender is connected for its own timed batch only and disconnected
after it: batches alternate, round after round. Times are this process's CPU time (the
machine is shared; time lost to other processes is nobody's overhead).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Result, report

OURS = "buttress.jobs"
PEER = "opentelemetry-instrumentation-celery"


def _app() -> Any:
    from celery import Celery

    app = Celery("bench", broker="memory://")
    app.conf.update(task_serializer="json", accept_content=["json"])

    @app.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop(x: int) -> int:
        return x

    return app, noop


def _case(
    title: str, provider: Any, celery: tuple[Any, Any], number: int, rounds: int
) -> tuple[str, float, float]:
    """One table: every contender's per-message CPU time with this tracer provider."""
    from opentelemetry import propagate
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from prometheus_client import CollectorRegistry

    from buttress import bound_correlation_id
    from buttress.deadline import deadline_scope
    from buttress.jobs import inject, instrument_celery

    app, task = celery
    tracer = provider.get_tracer("bench")
    with (
        tracer.start_as_current_span("request"),
        bound_correlation_id("bench-request"),
        deadline_scope(60.0),
    ):
        headers: dict[str, Any] = dict(inject({}))
    propagate.inject(headers)

    def message() -> None:
        task.apply_async(args=(1,))
        task.apply(args=(1,), headers=headers)

    def ours() -> Callable[[], None]:
        instrumentation = instrument_celery(
            app,
            trusted_producers="any",
            tracer_provider=provider,
            metrics_registry=registry,
        )
        return instrumentation.uninstrument

    def peer() -> Callable[[], None]:
        instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
        instrumentor.instrument(tracer_provider=provider)
        undo: Callable[[], None] = instrumentor.uninstrument
        return undo

    registry = CollectorRegistry()
    setups: dict[str, Callable[[], Callable[[], None]]] = {
        "bare celery": lambda: lambda: None,
        OURS: ours,
        PEER: peer,
    }
    results = {name: Result(name) for name in setups}
    for setup in setups.values():  # warm up every path once
        teardown = setup()
        for _ in range(max(number // 10, 1)):
            message()
        teardown()
    gc.collect()
    for _ in range(rounds):
        for name, setup in setups.items():
            teardown = setup()
            # CPU time of this process: the machine is shared, and another process taking
            # the core would count as ours on a wall clock.
            start = time.process_time()
            for _ in range(number):
                message()
            results[name].samples.append((time.process_time() - start) / number)
            teardown()
    text = report(title, list(results.values()), baseline="bare celery", against=PEER)
    base = results["bare celery"].best
    return text, (results[OURS].best - base) * 1e6, (results[PEER].best - base) * 1e6


def main(quick: bool = False) -> str:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    # Short batches, many rounds: a burst of load on a shared machine hits every contender.
    number, rounds = (200, 3) if quick else (400, 35)
    logging.getLogger("buttress.jobs").setLevel(logging.WARNING)
    celery = _app()  # one app for both tables: a task name is registered once
    sampled, ours_us, peer_us = _case(
        "Celery: per-message overhead (publish + run)", TracerProvider(), celery, number, rounds
    )
    # The messages of a request the service's sampler dropped (the other 99% at 1%): the
    # producer and consumer spans are not recorded, by either contender.
    unsampled, ours_off, peer_off = _case(
        "Celery: per-message overhead, the request not sampled",
        TracerProvider(sampler=ParentBased(ALWAYS_OFF)),
        celery,
        number,
        rounds,
    )
    return (
        sampled
        + "\n"
        + unsampled
        + "\n"
        + f"RESULT jobs buttress_overhead_us={ours_us:.1f} otel_celery_overhead_us={peer_us:.1f} "
        + f"buttress_vs_otel_celery={ours_us / peer_us:.3f} "
        + f"unsampled_buttress_overhead_us={ours_off:.1f} "
        + f"unsampled_otel_celery_overhead_us={peer_off:.1f} "
        + f"unsampled_buttress_vs_otel_celery={ours_off / peer_off:.3f}"
    )


if __name__ == "__main__":
    print(main())
