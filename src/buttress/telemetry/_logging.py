"""Correlation ids on every log line: a structlog processor, a stdlib filter, JSON set-up.

The processor and the filter add ``request_id`` (the correlation id), ``trace_id`` and
``span_id`` (the current OpenTelemetry span) to each line. Values already on the line
win: the access log passes the ids of the request it describes explicitly.
This module imports neither structlog nor OpenTelemetry at import time, so ``import
buttress`` stays cheap; :func:`configure_logging` imports structlog when it is called.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, TextIO

from . import _names as n
from ._correlation import correlation_id
from ._otel import current_trace_ids

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

__all__ = ["CorrelationFilter", "add_correlation_ids", "configure_logging"]

_REQUEST_ID, _TRACE_ID, _SPAN_ID = n.LOG_KEY_REQUEST_ID, n.LOG_KEY_TRACE_ID, n.LOG_KEY_SPAN_ID


def add_correlation_ids(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``request_id``, ``trace_id`` and ``span_id`` when known."""
    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault(_REQUEST_ID, request_id)
    ids = current_trace_ids()
    if ids is not None:
        event_dict.setdefault(_TRACE_ID, ids[0])
        event_dict.setdefault(_SPAN_ID, ids[1])
    return event_dict


class CorrelationFilter(logging.Filter):
    """stdlib filter: set ``request_id``, ``trace_id`` and ``span_id`` on every record.

    For ``%``-style formatters (``"%(request_id)s %(message)s"``); ids that are not known
    (outside a request or span) are ``default``. Attach it to a handler, not a logger, so
    it sees records propagated from child loggers too. It never drops a record.
    """

    def __init__(self, name: str = "", *, default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if _REQUEST_ID not in fields:
            request_id = correlation_id.get()
            fields[_REQUEST_ID] = self.default if request_id is None else request_id
        if _TRACE_ID not in fields:
            ids = current_trace_ids()
            fields[_TRACE_ID], fields[_SPAN_ID] = (self.default,) * 2 if ids is None else ids
        return True


LogFormat = Literal["json", "console", "auto"]


def _drop_formatter_attributes(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Another handler's Formatter may have run first and stored these on the record;
    # they are not `extra` fields (stdlib refuses `extra` keys of these names).
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


_HANDLER_MARK = "_buttress_handler"


class _AddResource:
    """structlog processor: the service's resource on every line (the line's own win)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = tuple(fields.items())

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in self._fields:
            event_dict.setdefault(key, value)
        return event_dict


def configure_logging(
    *,
    level: int,
    log_format: LogFormat,
    stream: TextIO,
    resource: Mapping[str, str] | None = None,
    otlp: Callable[[logging.Formatter], logging.Handler] | None = None,
) -> None:
    """Route structlog and stdlib logging into one handler on the root logger.

    Both render the same way: JSON (one object per line, stdlib ``extra`` fields as
    top-level keys) or structlog's console renderer; ``"auto"`` picks the console when
    ``stream`` is a terminal. ``resource`` fields (service, version, environment) go on
    every line. ``otlp`` makes a second handler from the JSON formatter (log records
    exported over OpenTelemetry carry the same fields as the JSON lines). Calling it again
    replaces the handlers it installed before and leaves the application's own alone.
    """
    import structlog

    if log_format == "auto":
        log_format = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_correlation_ids,
    ]
    if resource:
        shared.append(_AddResource(resource))

    def formatter(json: bool) -> logging.Formatter:
        renderer: list[Any]
        if json:
            renderer = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        else:
            renderer = [structlog.dev.ConsoleRenderer(colors=stream.isatty())]
        return structlog.stdlib.ProcessorFormatter(
            # Records from stdlib loggers: their `extra` fields become top-level keys.
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_formatter_attributes, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )

    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    handlers[0].setFormatter(formatter(log_format == "json"))
    if otlp is not None:
        handlers.append(otlp(formatter(True)))

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def unconfigure_logging() -> None:
    """Remove the handler :func:`configure_logging` installed and reset structlog."""
    import structlog

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    structlog.reset_defaults()
