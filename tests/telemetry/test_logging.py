"""Every log line carries request_id, trace_id and span_id; stdlib and structlog alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from buttress import CorrelationFilter, add_correlation_ids, bound_correlation_id
from buttress.telemetry import _logging


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    provider.shutdown()


def _hex_ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_processor_adds_ids_inside_a_request_and_span(tracer_provider: TracerProvider) -> None:
    with (
        bound_correlation_id("req-1"),
        tracer_provider.get_tracer("t").start_as_current_span("s") as span,
    ):
        event = add_correlation_ids(None, "info", {"event": "hi"})
    trace_id, span_id = _hex_ids(span)
    assert event == {"event": "hi", "request_id": "req-1", "trace_id": trace_id, "span_id": span_id}


def test_processor_adds_nothing_outside_a_request() -> None:
    assert add_correlation_ids(None, "info", {"event": "hi"}) == {"event": "hi"}


def test_processor_keeps_ids_already_on_the_line() -> None:
    with bound_correlation_id("current"):
        event = add_correlation_ids(None, "info", {"request_id": "explicit"})
    assert event == {"request_id": "explicit"}


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    return record


def test_filter_sets_ids_for_percent_formatters(tracer_provider: TracerProvider) -> None:
    formatter = logging.Formatter("%(request_id)s %(trace_id)s %(span_id)s %(message)s")
    record = _record()
    with (
        bound_correlation_id("req-2"),
        tracer_provider.get_tracer("t").start_as_current_span("s") as span,
    ):
        assert CorrelationFilter().filter(record) is True
    trace_id, span_id = _hex_ids(span)
    assert formatter.format(record) == f"req-2 {trace_id} {span_id} hello"


def test_filter_uses_the_default_outside_a_request() -> None:
    record = _record()
    CorrelationFilter(default="none").filter(record)
    assert (record.request_id, record.trace_id, record.span_id) == ("none", "none", "none")  # type: ignore[attr-defined]


def test_filter_keeps_explicit_ids() -> None:
    record = _record(request_id="explicit", trace_id="t", span_id="s")
    with bound_correlation_id("current"):
        CorrelationFilter().filter(record)
    assert (record.request_id, record.trace_id, record.span_id) == ("explicit", "t", "s")  # type: ignore[attr-defined]


@pytest.fixture
def json_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    _logging.configure_logging(level=logging.INFO, log_format="json", stream=stream)
    yield stream
    _logging.unconfigure_logging()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_lines_are_json_with_extra_fields_and_ids(
    json_stream: io.StringIO, tracer_provider: TracerProvider
) -> None:
    with (
        bound_correlation_id("req-3"),
        tracer_provider.get_tracer("t").start_as_current_span("s") as span,
    ):
        logging.getLogger("buttress.access").info(
            "http.request", extra={"method": "GET", "route": "/users/{id}", "status": 200}
        )
    (line,) = _lines(json_stream)
    trace_id, span_id = _hex_ids(span)
    assert line.pop("timestamp").endswith("Z")
    assert line == {
        "event": "http.request",
        "level": "info",
        "logger": "buttress.access",
        "method": "GET",
        "route": "/users/{id}",
        "status": 200,
        "request_id": "req-3",
        "trace_id": trace_id,
        "span_id": span_id,
    }


def test_structlog_lines_go_to_the_same_output(json_stream: io.StringIO) -> None:
    with bound_correlation_id("req-4"):
        structlog.get_logger("app").info("order.placed", order=42)
    (line,) = _lines(json_stream)
    assert (line["event"], line["order"], line["request_id"], line["logger"]) == (
        "order.placed",
        42,
        "req-4",
        "app",
    )


def test_the_level_filters_both(json_stream: io.StringIO) -> None:
    logging.getLogger("app").debug("hidden")
    structlog.get_logger("app").debug("hidden")
    assert json_stream.getvalue() == ""


def test_exceptions_are_structured(json_stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("app").exception("failed")
    (line,) = _lines(json_stream)
    assert line["exception"][0]["exc_type"] == "ValueError"


def test_console_format_is_not_json() -> None:
    stream = io.StringIO()
    _logging.configure_logging(level=logging.INFO, log_format="console", stream=stream)
    try:
        logging.getLogger("app").info("hello", extra={"user": "ada"})
    finally:
        _logging.unconfigure_logging()
    text = stream.getvalue()
    assert "hello" in text
    assert "user=ada" in text
    assert not text.startswith("{")


def test_auto_picks_json_when_not_a_terminal() -> None:
    stream = io.StringIO()  # not a TTY
    _logging.configure_logging(level=logging.INFO, log_format="auto", stream=stream)
    try:
        logging.getLogger("app").info("hello")
    finally:
        _logging.unconfigure_logging()
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_configuring_twice_keeps_one_handler_and_the_apps_own() -> None:
    root = logging.getLogger()
    own = logging.NullHandler()
    root.addHandler(own)
    try:
        for _ in range(2):
            _logging.configure_logging(level=logging.INFO, log_format="json", stream=io.StringIO())
        ours = [h for h in root.handlers if getattr(h, "_buttress_handler", False)]
        assert len(ours) == 1
        assert own in root.handlers
        _logging.unconfigure_logging()
        assert [h for h in root.handlers if getattr(h, "_buttress_handler", False)] == []
    finally:
        root.removeHandler(own)
