"""configure(): logs, traces and metrics for an application; bad values fail early.

A tracer provider can be set once per process, so everything that installs one runs in
a subprocess; the checks that fail before installing anything run here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import buttress
import buttress.slo
from buttress import ConfigurationError
from buttress.telemetry import _configure

from ._otlp import OTLPReceiver, attributes


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)
    yield
    _configure._reset()


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"service": ""}, "service=''"),
        ({"service": "a", "version": 3}, "version=3"),
        ({"service": "a", "environment": " "}, "environment=' '"),
        ({"service": "a", "log_level": "LOUD"}, "log_level='LOUD'"),
        ({"service": "a", "log_level": 99}, "log_level=99"),
        ({"service": "a", "log_format": "xml"}, "log_format='xml'"),
        ({"service": "a", "metrics_registry": "default"}, "metrics_registry='default'"),
        ({"service": "a", "flush_timeout": 0}, "flush_timeout=0"),
        ({"service": "a", "flush_timeout": "5"}, "flush_timeout='5'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace("(", r"\(")):
        buttress.configure(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_SDK_DISABLED", "yes"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/buttress"),
        ("OTEL_METRICS_EXPORTER", "statsd"),
        ("OTEL_LOGS_EXPORTER", "syslog"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "10s"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key"),
        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "exponential"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
        ("OTEL_PROPAGATORS", "tracecontext,b3x"),
    ],
)
def test_bad_environment_is_named_and_nothing_is_installed(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ConfigurationError, match=f"{name}={value!r}"):
        buttress.configure(service="checkout")
    assert logging.getLogger().handlers == handlers
    assert _configure._state is None


def test_multiprocess_dir_set_too_late_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # This process imported prometheus_client without the variable: metrics stay local.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="set after prometheus_client was imported"):
        buttress.configure(service="checkout")


@pytest.mark.parametrize("ratio", ["2", "half"])
def test_bad_sampler_ratio_is_named(monkeypatch: pytest.MonkeyPatch, ratio: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    with pytest.raises(ConfigurationError, match=f"OTEL_TRACES_SAMPLER_ARG={ratio!r}"):
        buttress.configure(service="checkout")


def test_grpc_without_its_exporter_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="opentelemetry-exporter-otlp-proto-grpc"):
        buttress.configure(service="checkout")


SERVICE = """
import json, logging, sys
import buttress
from buttress.events import RetryScheduled, default_registry
from opentelemetry import trace

telemetry = buttress.configure(service="checkout", version="1.2.3", environment="test",
                               log_format="json")
tracer = trace.get_tracer("shop")
with buttress.bound_correlation_id("req-42"):
    with tracer.start_as_current_span("charge card", attributes={"order.id": 7}) as span:
        default_registry.emit(RetryScheduled("payments", 1, 0.2, "ConnectError"))
        logging.getLogger("shop").info("charged", extra={"amount": 12})
print(json.dumps({"exposition": type(telemetry.exposition_registry()).__name__}))
"""


def test_spans_reach_a_real_otlp_receiver_and_logs_match_them() -> None:
    with OTLPReceiver() as receiver:
        result = _run(SERVICE, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert result.returncode == 0, result.stderr
    assert receiver.paths == ["/v1/traces"]
    ((resource, span),) = receiver.spans()
    assert resource["service.name"] == "checkout"
    assert resource["service.version"] == "1.2.3"
    assert resource["deployment.environment.name"] == "test"
    assert span.name == "charge card"
    assert attributes(span.attributes) == {"order.id": 7}
    (event,) = span.events
    assert event.name == "buttress.retry.scheduled"
    assert attributes(event.attributes) == {
        "buttress.policy": "payments",
        "buttress.retry.attempt": 1,
        "buttress.retry.wait_seconds": 0.2,
        "error.type": "ConnectError",
    }

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    by_event = {line["event"]: line for line in lines}
    for name in ("charged", "buttress.retry.scheduled"):
        line = by_event[name]
        assert line["request_id"] == "req-42"
        assert line["trace_id"] == span.trace_id.hex()
        assert line["span_id"] == span.span_id.hex()
    assert by_event["charged"]["amount"] == 12
    assert by_event["buttress.retry.scheduled"]["policy"] == "payments"


def test_nothing_is_exported_when_nothing_is_configured() -> None:
    # An exporter would fail loudly against nothing; the default sends nothing anywhere.
    result = _run(SERVICE)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    # Spans still exist (so logs correlate with upstream traces) but go nowhere.
    assert {len(line["trace_id"]) for line in lines} == {32}


def test_otel_service_name_overrides_the_argument() -> None:
    with OTLPReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "renamed"}
        result = _run(SERVICE, env)
    assert result.returncode == 0, result.stderr
    ((resource, _),) = receiver.spans()
    assert resource["service.name"] == "renamed"


def test_sampler_from_the_environment() -> None:
    with OTLPReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_SAMPLER": "always_off",
        }
        result = _run(SERVICE, env)
    assert result.returncode == 0, result.stderr
    assert receiver.spans() == []


def test_idempotent_and_never_replaces_the_apps_tracer_provider() -> None:
    result = _run(
        """
        import buttress
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        own = TracerProvider()
        trace.set_tracer_provider(own)
        first = buttress.configure(service="a", log_format="json")
        assert first.tracer_provider is None
        assert trace.get_tracer_provider() is own
        assert buttress.configure(service="a", log_format="json") is first
        try:
            buttress.configure(service="b", log_format="json")
        except buttress.ConfigurationError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "already called with service='a'" in result.stdout


def test_multiprocess_mode_exposes_every_workers_files(tmp_path: Path) -> None:
    result = _run(SERVICE, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"exposition": "CollectorRegistry"}
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())


def test_slos_must_be_slo_objects() -> None:
    with pytest.raises(ConfigurationError, match=r"'p99' is not a buttress\.slo\.SLO"):
        buttress.configure(service="a", slos=["p99"])  # type: ignore[list-item]


def test_declared_slos_feed_the_middleware_buckets() -> None:
    result = _run(
        """
        import warnings

        import buttress.slo
        from buttress.middleware import ASGIMiddleware

        async def app(scope, receive, send):
            pass

        early = ASGIMiddleware(app, metrics=False)  # built before configure(): warned
        checkout = buttress.slo.SLO("checkout-latency", service="a", objective=0.99, threshold=0.3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            telemetry = buttress.configure(service="a", log_format="json", slos=[checkout])
        assert telemetry.slos == (checkout,)
        later = ASGIMiddleware(app, metrics=False)
        own = ASGIMiddleware(app, metrics=False, slos=[])
        print(0.3 in later.observer.buckets, 0.3 in early.observer.buckets)
        print(0.3 in own.observer.buckets)
        print([str(w.message) for w in caught])
        """
    )
    assert result.returncode == 0, result.stderr
    later, own, warned = result.stdout.splitlines()
    assert later == "True False"
    assert own == "False"
    assert "a middleware was built before configure(slos=...)" in warned


def test_target_info_carries_the_resource_on_metrics() -> None:
    result = _run(
        """
        import buttress
        from prometheus_client import REGISTRY, generate_latest

        buttress.configure(service="shop", version="1.2.3", environment="prod", log_format="json")
        print(generate_latest(REGISTRY).decode())
        """,
        {"OTEL_RESOURCE_ATTRIBUTES": "team=payments,service.version=9"},
    )
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("target_info{")]
    # The argument wins over OTEL_RESOURCE_ATTRIBUTES; the variable adds what it lacks.
    for label in (
        'service_name="shop"',
        'service_version="1.2.3"',
        'deployment_environment_name="prod"',
        'team="payments"',
        'telemetry_sdk_language="python"',
    ):
        assert label in line
    assert line.endswith(" 1.0")


def test_every_log_line_carries_the_resource() -> None:
    result = _run(
        """
        import logging
        import buttress

        buttress.configure(service="shop", version="1.2.3", environment="prod", log_format="json")
        logging.getLogger("app").warning("hello")
        """,
        {"OTEL_SERVICE_NAME": "renamed"},
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.splitlines()[-1])
    assert (line["service"], line["service_version"], line["deployment_environment"]) == (
        "renamed",
        "1.2.3",
        "prod",
    )


def test_otlp_only_metrics_leave_prometheus_unrecorded() -> None:
    result = _run(
        """
        import buttress
        from prometheus_client import REGISTRY, generate_latest

        telemetry = buttress.configure(service="shop", log_format="json")

        @buttress.retry(on=KeyError, name="lookup")
        def call() -> int:
            return 1

        call()
        text = generate_latest(REGISTRY).decode()
        print("target_info" in text, "buttress_retry_calls_total{" in text)
        print(type(telemetry.meter_provider).__name__)
        """,
        {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "600000"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["False False", "MeterProvider"]
    # The console exporter printed the point at exit: the flush at the stop.
    assert '"name": "buttress.retry.calls"' in result.stdout


def test_a_middleware_built_before_configure_is_warned_about() -> None:
    result = _run(
        """
        import warnings
        import buttress
        from buttress.middleware import ASGIMiddleware

        async def app(scope, receive, send):
            pass

        ASGIMiddleware(app)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            buttress.configure(service="shop", log_format="json")
        print([str(w.message)[:40] for w in caught])
        """,
        {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "600000"},
    )
    assert result.returncode == 0, result.stderr
    assert "a middleware or transport was built befo" in result.stdout.splitlines()[0]


def test_sdk_disabled_turns_off_otel_metrics_and_logs_too() -> None:
    result = _run(
        """
        import buttress

        telemetry = buttress.configure(service="shop", log_format="json")
        print(telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider)
        """,
        {
            "OTEL_SDK_DISABLED": "true",
            "OTEL_METRICS_EXPORTER": "console",
            "OTEL_LOGS_EXPORTER": "console",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None", "None"]


def test_multiprocess_exposition_has_one_target_info_for_all_workers(tmp_path: Path) -> None:
    result = _run(
        """
        import buttress
        from prometheus_client import generate_latest

        telemetry = buttress.configure(service="shop", version="1.2.3", log_format="json")
        assert "service.instance.id" in telemetry.resource
        print(generate_latest(telemetry.exposition_registry()).decode())
        """,
        {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("target_info{")]
    assert 'service_name="shop"' in line
    assert 'service_version="1.2.3"' in line
    assert "service_instance_id" not in line  # the same series whichever worker answers
