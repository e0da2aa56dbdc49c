"""Runs the demo end to end and leaves its artifacts behind."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .._events import default_registry
from ..telemetry import _names as names
from ._scenario import PHASES, phase_at
from ._servers import LoopbackServer, free_port
from ._service import LATENCY_THRESHOLD, OBJECTIVE, build_service, demo_slos
from ._stats import DemoStats
from ._summary import build_summary, summary_markdown
from ._traffic import drive
from ._upstream import UpstreamControl, build_upstream
from ._view import make_view

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float = 60.0
    rate: float = 40.0
    port: int = 0
    out: Path | None = None
    plain: bool = False
    prometheus: bool = False


@dataclass
class _Outcome:
    sent: int = 0
    upstream_calls: int = 0
    interrupted: bool = False
    metrics_text: str = ""
    prometheus: dict[str, Any] = field(default_factory=dict)
    service_url: str = ""
    started_at: str = ""
    traffic_seconds: float = 0.0


def run(options: DemoOptions) -> Path:
    """Run the demo; returns the folder holding its artifacts."""
    out = options.out or Path.cwd() / time.strftime("buttress-demo-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    exporter, providers = _install_tracing()
    log_file = (out / "logs.jsonl").open("w", encoding="utf-8")
    _log_to(log_file)
    stats = DemoStats(objective=OBJECTIVE, latency_threshold=LATENCY_THRESHOLD)
    default_registry.add(stats)
    outcome = _Outcome(started_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        asyncio.run(_main(options, stats, outcome, out, providers[1]))
    finally:
        default_registry.remove(stats)
        for provider in providers:
            provider.force_flush()
        _write_artifacts(out, options, stats, outcome, exporter)
        _unlog(log_file)
    return out


def _install_tracing() -> tuple[InMemorySpanExporter, list[Any]]:
    """One exporter; checkout's provider is the global one, pricing has its own resource."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    providers = []
    for service in ("checkout", "pricing"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
    trace.set_tracer_provider(providers[0])
    return exporter, providers


def _log_to(stream: Any) -> None:
    # JSON lines into the artifact folder: the terminal belongs to the live view.
    from ..telemetry._logging import configure_logging

    configure_logging(level=logging.INFO, log_format="json", stream=stream)
    # httpx logs every request at INFO; the access log already has one line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _unlog(stream: Any) -> None:
    from ..telemetry._logging import unconfigure_logging

    unconfigure_logging()
    stream.close()


async def _main(
    options: DemoOptions, stats: DemoStats, outcome: _Outcome, out: Path, pricing_tracing: Any
) -> None:
    loop = asyncio.get_running_loop()
    control = UpstreamControl(on_call=stats.record_upstream)
    upstream = LoopbackServer(build_upstream(control, tracer_provider=pricing_tracing))
    await upstream.start()
    app, client = build_service(upstream.url)
    service = LoopbackServer(app, port=options.port)
    await service.start()
    outcome.service_url = service.url
    stop = asyncio.Event()
    catch_signals = _can_catch_signals()
    if catch_signals:  # Ctrl-C ends the traffic early; the artifacts are still written
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    prometheus = _start_prometheus(out, service.port) if options.prometheus else None
    print(
        f"buttress demo: service on {service.url} (metrics at {service.url}/metrics), "
        f"upstream on {upstream.url}; {options.duration:.0f} s at {options.rate:.0f} req/s"
    )
    if prometheus is not None:
        print(f"buttress demo: Prometheus on {prometheus.url}")
    view = make_view(options.plain)
    stats.start()
    traffic = asyncio.create_task(
        drive(service.url, stats, rate=options.rate, duration=options.duration, stop=stop)
    )
    begin = time.monotonic()
    phase = PHASES[0]
    try:
        while not traffic.done():
            elapsed = time.monotonic() - begin
            phase = phase_at(elapsed, options.duration)
            control.mode = phase.mode
            view.update(stats, phase, elapsed, options.duration)
            await asyncio.wait({traffic}, timeout=0.25)
        outcome.sent = traffic.result()
    finally:
        outcome.traffic_seconds = min(time.monotonic() - begin, options.duration)
        # The last state, with every request the generator waited for counted.
        view.update(stats, phase, time.monotonic() - begin, options.duration)
        view.close()
        outcome.interrupted = stop.is_set()
        outcome.upstream_calls = control.calls
        async with httpx.AsyncClient(base_url=service.url) as scraper:
            outcome.metrics_text = (await scraper.get("/metrics")).text
        if prometheus is not None:
            outcome.prometheus = await prometheus.snapshot()
            prometheus.stop()
        if catch_signals:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        await client.aclose()
        await service.stop()
        await upstream.stop()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _can_catch_signals() -> bool:
    # The loop takes signals only in the main thread, and not at all on Windows.
    return sys.platform != "win32" and threading.current_thread() is threading.main_thread()


class _Prometheus:
    """A local Prometheus scraping the demo service every second, with the SLO rules."""

    def __init__(self, binary: str, out: Path, service_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder = out / "prometheus"
        folder.mkdir(exist_ok=True)
        self._data = folder / "data"
        rules = folder / "slo-rules.yaml"
        rules.write_text(_rules_text(), encoding="utf-8")
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: [{json.dumps(str(rules))}]\n"
            "scrape_configs:\n  - job_name: checkout\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{service_port}']\n",
            encoding="utf-8",
        )
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "prometheus.log").open("w"),
        )

    async def snapshot(self) -> dict[str, Any]:
        queries = {
            "request_rate": f'sum(rate({names.HTTP_SERVER_DURATION}_count{{job="checkout"}}[1m]))',
            "sli_error_ratio_5m": f"{names.SLO_SLI_ERROR_RATIO}5m",
            "alerts": names.PROMETHEUS_ALERTS,
        }
        results: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as client:
            for name, query in queries.items():
                try:
                    response = await client.get("/api/v1/query", params={"query": query})
                    results[name] = response.json().get("data", {}).get("result", [])
                except httpx.HTTPError as error:
                    results[name] = f"unavailable: {error}"
        return results

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The database only served the live queries; the artifacts keep config and answers.
        shutil.rmtree(self._data, ignore_errors=True)


def _start_prometheus(out: Path, service_port: int) -> _Prometheus | None:
    binary = shutil.which("prometheus")
    if binary is None:
        print(
            "buttress demo: --prometheus asked, but no prometheus binary is installed; "
            "going on without it"
        )
        return None
    return _Prometheus(binary, out, service_port)


def _rules_text() -> str:
    from ..telemetry._rules import render_rules, slo_rules

    return render_rules(slo_rules(demo_slos()))


def _write_artifacts(
    out: Path,
    options: DemoOptions,
    stats: DemoStats,
    outcome: _Outcome,
    exporter: InMemorySpanExporter,
) -> None:
    from .. import dashboards
    from ._report_html import render_html
    from ._report_model import build_report
    from ._report_traces import span_records
    from ._timeline import timeline

    dashboards.export(out / "dashboards")
    (out / "rules").mkdir(exist_ok=True)
    (out / "rules" / "slo-rules.yaml").write_text(_rules_text(), encoding="utf-8")
    (out / "metrics.txt").write_text(outcome.metrics_text, encoding="utf-8")
    finished = exporter.get_finished_spans()
    spans = [json.loads(span.to_json(indent=None)) for span in finished]
    (out / "spans.json").write_text(json.dumps(spans, indent=1), encoding="utf-8")
    summary = build_summary(
        stats,
        interrupted=outcome.interrupted,
        upstream_calls=outcome.upstream_calls,
        latency_threshold=LATENCY_THRESHOLD,
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    if outcome.prometheus:
        (out / "prometheus" / "queries.json").write_text(
            json.dumps(outcome.prometheus, indent=2), encoding="utf-8"
        )
    report = build_report(
        summary,
        timeline(stats, until=outcome.traffic_seconds),
        span_records(finished),
        duration=options.duration,
        started_at=outcome.started_at,
    )
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
    stopped = " (stopped early by Ctrl-C)" if outcome.interrupted else ""
    print(f"buttress demo: artifacts in {out}{stopped}")
    print(f"buttress demo: incident report: {out / 'report.html'}")
