"""The middleware's per-request cost with metrics over OpenTelemetry (OTLP) on, against
Prometheus only, beside opentelemetry-instrumentation-asgi recording its own metrics.

configure() chooses the metric back-ends once per process (from OTEL_METRICS_EXPORTER),
so each configuration runs in a child process of its own: ``prometheus`` (the default),
``otlp,prometheus`` and ``otlp``. Every child times, interleaved in one event loop, a bare
Starlette app, the app behind buttress's ASGIMiddleware, and the app behind otel-asgi with
the same tracer provider and a meter provider exporting over OTLP alike (its
``http.server.*`` histograms and counter: the same metrics we record). So each child
carries its own reference, and the configurations compare through it: buttress's
overhead divided by otel-asgi's in the same process, and by Prometheus-only buttress's
via those ratios. The OTLP endpoint is a closed port on 127.0.0.1 and the export interval
is far longer than the run: recording is timed, not exporting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._harness import compare_async

HERE = Path(__file__).resolve().parent
MODES = ("prometheus", "otlp,prometheus", "otlp")
OURS = "buttress"
PEER = "otel-asgi (spans + its own OTLP metrics)"


def _child(number: int, rounds: int) -> dict[str, Any]:
    import logging

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    import buttress
    from benchmarks.bench_middleware import _asgi_driver, _starlette
    from buttress.middleware import ASGIMiddleware

    telemetry = buttress.configure(service="bench", log_format="json", flush_timeout=1.0)
    logging.getLogger("buttress.access").setLevel(logging.WARNING)  # as in bench_middleware
    provider = trace.get_tracer_provider()
    path = "/r0/items/42"

    ours = _starlette(1)
    ours.add_middleware(ASGIMiddleware)

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)
    meters = MeterProvider(metric_readers=[reader], resource=provider.resource)  # type: ignore[attr-defined]
    peer = _starlette(1)
    peer.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=provider,
        meter_provider=meters,
        exclude_spans=["receive", "send"],
    )
    contenders: dict[str, Any] = {
        "bare": _asgi_driver(_starlette(1), path),
        OURS: _asgi_driver(ours, path),
        PEER: _asgi_driver(peer, path),
    }
    results = compare_async(contenders, number=number, rounds=rounds)
    meters.shutdown(timeout_millis=1000)
    chosen = "meter provider" if telemetry.meter_provider is not None else "no meter provider"
    return {"chosen": chosen, "best": {r.name: r.best for r in results}}


def _run_child(mode: str, quick: bool) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_METRICS_EXPORTER": mode,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9/v1/metrics",  # closed
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_TRACES_SAMPLER": "always_on",
        "BENCH_OTEL_METRICS_CHILD": "quick" if quick else "full",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_otel_metrics"],
        cwd=HERE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main(quick: bool = False) -> str:
    by_mode = {mode: _run_child(mode, quick) for mode in MODES}
    lines = [
        "## middleware metrics: OpenTelemetry (OTLP) on vs Prometheus only",
        "",
        "| OTEL_METRICS_EXPORTER | bare (us) | buttress overhead (us) | otel-asgi overhead (us) "
        "| buttress / otel-asgi |",
        "|---|---|---|---|---|",
    ]
    ratio: dict[str, float] = {}
    overhead: dict[str, float] = {}
    for mode, found in by_mode.items():
        best = found["best"]
        ours = overhead[mode] = best[OURS] - best["bare"]
        peer = best[PEER] - best["bare"]
        ratio[mode] = ours / peer
        lines.append(
            f"| {mode} | {best['bare'] * 1e6:.1f} | {ours * 1e6:.1f} | {peer * 1e6:.1f} "
            f"| {ratio[mode]:.3f} |"
        )
    both = ratio["otlp,prometheus"] / ratio["prometheus"]
    alone = ratio["otlp"] / ratio["prometheus"]
    direct = overhead["otlp,prometheus"] / overhead["prometheus"]
    lines += [
        "",
        f"buttress overhead with OTLP + Prometheus / Prometheus only: {direct:.2f} directly "
        f"(across processes), {both:.2f} through each run's otel-asgi reference; OTLP only / "
        f"Prometheus only: {alone:.2f} through the reference.",
        "",
        f"RESULT otel_metrics prometheus_vs_otel_asgi={ratio['prometheus']:.3f} "
        f"otlp_prometheus_vs_otel_asgi={ratio['otlp,prometheus']:.3f} "
        f"otlp_vs_otel_asgi={ratio['otlp']:.3f} otlp_prometheus_vs_prometheus={both:.2f} "
        f"otlp_prometheus_vs_prometheus_direct={direct:.2f} "
        f"otlp_vs_prometheus={alone:.2f}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    child = os.environ.get("BENCH_OTEL_METRICS_CHILD")
    if child:
        number, rounds = (200, 3) if child == "quick" else (1_000, 15)
        print(json.dumps(_child(number, rounds)))
    else:
        print(main(quick="--quick" in sys.argv))
