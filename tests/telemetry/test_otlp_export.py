"""Spans, metrics and logs over OTLP/HTTP from real servers, with one resource, and
nothing lost at a graceful stop.

FastAPI under uvicorn and Flask under gunicorn export to a real OTLP/HTTP receiver on
127.0.0.1 with the SDK's default batch delays and a metric interval far longer than the
test: whatever arrives after SIGTERM was flushed by the stop itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._services import free_port, wait_for_port
from ._otlp import OTLPReceiver, attributes

HERE = Path(__file__).resolve().parent
REQUESTS = 3
SEMCONV_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


def _env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRICS_EXPORTER": "otlp,prometheus",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the stop's flush can deliver them
        "OTEL_RESOURCE_ATTRIBUTES": "team=payments",
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _serve(
    command: list[str], env: dict[str, str], port: int, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    # stderr=PIPE holds the JSON lines for the test to read at the end: a few requests'
    # worth (a pipe's buffer is 64 KiB, and a full one blocks the server's logging).
    process = subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for_port(port, timeout=20)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def _drive_and_stop(
    process: subprocess.Popen[bytes], port: int, requests: int = REQUESTS, path: str = "/items/a"
) -> tuple[list[str], bytes]:
    """``requests`` requests to ``path`` + a number, then SIGTERM: their ids and stderr."""
    trace_ids = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(requests):
            response = client.get(f"{path}{i}")
            assert response.status_code == 200
            trace_ids.append(response.headers["x-request-id"])
    process.send_signal(signal.SIGTERM)  # what Kubernetes sends at a rolling deploy
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return trace_ids, stderr or b""


def _uvicorn(port: int, lifespan: str = "auto") -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "otlp_services:fastapi_app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
        "--lifespan", lifespan,
    ]  # fmt: skip


def _gunicorn(port: int, workers: int, app: str = "otlp_services:flask_app") -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--log-level", "warning", "--graceful-timeout", "10", app,
    ]  # fmt: skip


def _check_one_resource(receiver: OTLPReceiver, processes: int = 1) -> dict[str, Any]:
    found = [r for r, _ in receiver.spans() + receiver.metrics() + receiver.logs()]
    assert found
    # One resource per process, told apart by the instance id alone.
    assert len({r["service.instance.id"] for r in found}) == processes
    resources = [{k: v for k, v in r.items() if k != "service.instance.id"} for r in found]
    first = resources[0]
    assert all(r == first for r in resources)
    assert first["service.name"] == "otlp-shop"
    assert first["service.version"] == "2.0.1"
    assert first["deployment.environment.name"] == "test"
    assert first["team"] == "payments"
    return first


def _check_everything_arrived(receiver: OTLPReceiver, trace_ids: list[str], route: str) -> None:
    # Ours: FastAPI's own instrumentation may add server spans of its own beside them.
    servers = [s for _, s in receiver.spans() if "buttress.request_id" in attributes(s.attributes)]
    assert sorted(s.trace_id.hex() for s in servers) == sorted(trace_ids)
    assert {s.name for s in servers} == {f"GET {route}"}

    # Cumulative points: each process's last export holds its totals (a stop may export
    # twice, at the lifespan shutdown and at the signal), and the processes' totals add up.
    last: dict[tuple[str, str], Any] = {}
    for resource, metric in receiver.metrics():
        last[(resource["service.instance.id"], metric.name)] = metric
    by_name: dict[str, list[Any]] = {}
    for (_, name), metric in last.items():
        by_name.setdefault(name, []).append(metric)
    metrics = {name: found[0] for name, found in by_name.items()}
    duration = metrics["http.server.request.duration"]
    assert duration.unit == "s"
    # Each worker process exports its own points: their counts add up to the requests.
    points = [p for m in by_name["http.server.request.duration"] for p in m.histogram.data_points]
    assert sum(p.count for p in points) == REQUESTS
    point = points[0]
    assert list(point.explicit_bounds) == SEMCONV_BUCKETS
    assert attributes(point.attributes) == {
        "http.request.method": "GET",
        "http.route": route,
        "http.response.status_code": 200,
    }
    active = metrics["http.server.active_requests"]
    assert active.unit == "{request}"
    assert {p.as_int for p in active.sum.data_points} == {0}
    assert not active.sum.is_monotonic
    calls = metrics["buttress.retry.calls"]
    assert calls.sum.is_monotonic
    call_points = [p for m in by_name["buttress.retry.calls"] for p in m.sum.data_points]
    assert {tuple(sorted(attributes(p.attributes).items())) for p in call_points} == {
        (("outcome", "success"), ("policy", "lookup"))
    }
    assert sum(p.as_int for p in call_points) == REQUESTS

    records = [r for _, r in receiver.logs()]
    by_body: dict[str, list[Any]] = {}
    for record in records:
        by_body.setdefault(record.body.string_value, []).append(record)
    for body in ("item.looked_up", "http.request"):
        found = by_body[body]
        assert sorted(r.trace_id.hex() for r in found) == sorted(trace_ids), body
        assert all(len(r.span_id) == 8 for r in found)
    stdlib = [r for r in records if r.body.string_value.startswith("stdlib line for ")]
    assert sorted(r.trace_id.hex() for r in stdlib) == sorted(trace_ids)
    assert all(r.severity_text == "INFO" and r.severity_number == 9 for r in stdlib)
    access = attributes(by_body["http.request"][0].attributes)
    assert access["route"] == route
    assert access["status"] == 200


@pytest.mark.slow
@pytest.mark.parametrize("lifespan", ["auto", "off"])
def test_uvicorn_sigterm_loses_no_span_metric_point_or_log_record(lifespan: str) -> None:
    # With the lifespan, the middleware flushes at its shutdown; without it, the SIGTERM
    # that uvicorn re-raises after its graceful shutdown reaches configure()'s handler.
    port = free_port()
    with OTLPReceiver() as receiver:
        process = _serve(_uvicorn(port, lifespan), _env(receiver), port)
        trace_ids, stderr = _drive_and_stop(process, port)
        # The flush does not change how the process ends: killed by the signal, as before.
        assert process.returncode == -signal.SIGTERM
        _check_everything_arrived(receiver, trace_ids, "/items/{item}")
        _check_one_resource(receiver)
    # The JSON lines on stderr stay, with the same resource.
    assert b'"service_version": "2.0.1"' in stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_gunicorn_sigterm_loses_no_span_metric_point_or_log_record(workers: int) -> None:
    port = free_port()
    with OTLPReceiver() as receiver:
        process = _serve(_gunicorn(port, workers), _env(receiver), port)
        trace_ids, _ = _drive_and_stop(process, port)
        _check_everything_arrived(receiver, trace_ids, "/items/<item>")
        # Each worker that served a request exported under its own instance id.
        signals = receiver.spans() + receiver.metrics() + receiver.logs()
        served = len({r["service.instance.id"] for r, _ in signals})
        assert 1 <= served <= workers
        _check_one_resource(receiver, processes=served)


@pytest.mark.slow
def test_django_under_gunicorn_loses_nothing_at_sigterm() -> None:
    port = free_port()
    with OTLPReceiver() as receiver:
        app = "tests.telemetry.otlp_django:application"
        env = _env(receiver, PYTHONPATH=str(HERE.parents[1]))
        process = _serve(_gunicorn(port, 1, app), env, port)
        trace_ids, _ = _drive_and_stop(process, port)
        _check_everything_arrived(receiver, trace_ids, "/items/<str:item>")
        _check_one_resource(receiver)


@pytest.mark.slow
def test_exponential_histograms_when_asked() -> None:
    port = free_port()
    aggregation = {
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": (
            "base2_exponential_bucket_histogram"
        )
    }
    with OTLPReceiver() as receiver:
        process = _serve(_uvicorn(port), _env(receiver, **aggregation), port)
        _drive_and_stop(process, port)
        metrics = {m.name: m for _, m in receiver.metrics()}
    duration = metrics["http.server.request.duration"]
    assert duration.WhichOneof("data") == "exponential_histogram"
    assert sum(p.count for p in duration.exponential_histogram.data_points) == REQUESTS


@pytest.mark.slow
def test_a_slow_receiver_bounds_the_stop_and_never_the_requests() -> None:
    port = free_port()
    with OTLPReceiver(delay=30.0) as receiver:
        process = _serve(_uvicorn(port), _env(receiver, OTEL_BSP_SCHEDULE_DELAY="50"), port)
        started = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(20):
                assert client.get(f"/items/s{i}").status_code == 200
        serving = time.monotonic() - started
        stop = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        stopping = time.monotonic() - stop
    # Exports hang for 30 s; requests never wait for them, and the stop waits at most
    # its flush bound (5 s by default) plus the server's own shutdown.
    assert serving < 10.0
    assert stopping < 15.0


_SCRIPT = """
import logging, sys, time
import buttress
from opentelemetry import trace

buttress.configure(service="otlp-shop", version="2.0.1", environment="test", log_format="json")

@buttress.retry(on=KeyError, name="lookup", attempts=2)
def lookup():
    return 1

with trace.get_tracer("job").start_as_current_span("job.step"):
    lookup()
    logging.getLogger("job").warning("step done")
print("ready", flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


@pytest.mark.parametrize("end", ["exit", "sigterm"])
def test_a_plain_process_flushes_at_exit_and_on_sigterm(end: str) -> None:
    # A job, a Django management command, Flask's development server: no ASGI lifespan,
    # no server taking the signal. Interpreter exit runs atexit; SIGTERM's default would
    # not, so configure() takes it when nothing else does.
    with OTLPReceiver() as receiver:
        process = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, "wait" if end == "sigterm" else "exit"],
            env=_env(receiver),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        if end == "sigterm":
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        spans = [s for _, s in receiver.spans()]
        metrics = {m.name for _, m in receiver.metrics()}
        logs = [r for _, r in receiver.logs() if r.body.string_value == "step done"]
        _check_one_resource(receiver)
    assert process.returncode == (-signal.SIGTERM if end == "sigterm" else 0)
    assert [s.name for s in spans] == ["job.step"]
    assert "buttress.retry.calls" in metrics
    assert [r.trace_id for r in logs] == [spans[0].trace_id]


@pytest.mark.slow
def test_outbound_calls_export_the_client_instruments() -> None:
    port = free_port()
    with OTLPReceiver() as receiver:
        process = _serve(_uvicorn(port), _env(receiver), port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/proxy/x").json() == {"upstream": "X"}
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        metrics = {m.name: m for _, m in receiver.metrics()}  # the last export of each
    duration = metrics["http.client.request.duration"]
    assert duration.unit == "s"
    (point,) = duration.histogram.data_points
    assert point.count == 1
    assert list(point.explicit_bounds) == SEMCONV_BUCKETS
    assert attributes(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "http.response.status_code": 200,
    }
    active = metrics["http.client.active_requests"]
    assert active.unit == "{request}"
    assert {p.as_int for p in active.sum.data_points} == {0}
    routes = {
        attributes(p.attributes)["http.route"]
        for p in metrics["http.server.request.duration"].histogram.data_points
    }
    assert routes == {"/proxy/{item}", "/items/{item}"}


SAMPLED_REQUESTS = 160
_LOW_64 = (1 << 64) - 1


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_a_sampling_ratio_from_the_environment_records_the_traces_it_chose(server: str) -> None:
    # OTEL_TRACES_SAMPLER builds ParentBased(TraceIdRatioBased(0.5)): buttress takes that
    # decision itself and makes the dropped spans, so what arrives must be exactly the
    # traces the ratio picks by id, each request keeping its trace id either way.
    port = free_port()
    command = _uvicorn(port) if server == "uvicorn" else _gunicorn(port, 1)
    extra = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}
    with OTLPReceiver() as receiver:
        process = _serve(command, _env(receiver, **extra), port, stderr=subprocess.DEVNULL)
        ids, _ = _drive_and_stop(process, port, SAMPLED_REQUESTS, "/items/s")
        servers = [
            s for _, s in receiver.spans() if "buttress.request_id" in attributes(s.attributes)
        ]
        access = [r for _, r in receiver.logs() if r.body.string_value == "http.request"]
    assert len(set(ids)) == SAMPLED_REQUESTS
    assert all(len(i) == 32 for i in ids)  # every request has its trace id, sampled or not
    bound = round(0.5 * (_LOW_64 + 1))
    chosen = sorted(i for i in ids if int(i, 16) & _LOW_64 < bound)
    assert sorted(s.trace_id.hex() for s in servers) == chosen
    # About half: a ratio applied twice would record a quarter.
    assert 0.3 * SAMPLED_REQUESTS <= len(chosen) <= 0.7 * SAMPLED_REQUESTS
    # The access lines of dropped requests carry their trace ids all the same.
    assert sorted(r.trace_id.hex() for r in access) == sorted(ids)
