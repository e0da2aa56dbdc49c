"""A real OTLP/HTTP receiver on 127.0.0.1: decodes every trace, metric and log export.

``delay`` makes it slow (it answers after that many seconds); ``fail`` makes every
export answer 503 (counted in ``refused``).
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_KINDS: dict[str, tuple[Any, Any]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


class OTLPReceiver:
    """Accepts ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``; keeps every request."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.log_requests: list[ExportLogsServiceRequest] = []
        self.paths: list[str] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                kinds = _KINDS.get(self.path)
                if kinds is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                request = kinds[0]()
                request.ParseFromString(body)
                if delay:
                    time.sleep(delay)
                lists: dict[str, list[Any]] = {
                    "/v1/traces": receiver.requests,
                    "/v1/metrics": receiver.metric_requests,
                    "/v1/logs": receiver.log_requests,
                }
                kept = lists[self.path]
                with receiver.changed:
                    receiver.paths.append(self.path)
                    kept.append(request)
                    receiver.changed.notify_all()
                reply = kinds[1]().SerializeToString()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the exporter gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every received span with its resource attributes."""
        found = []
        for request in list(self.requests):
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found

    def metrics(self) -> list[tuple[dict[str, Any], Any]]:
        """Every received metric (name, unit, data) with its resource attributes."""
        found = []
        for request in list(self.metric_requests):
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    found += [(resource, metric) for metric in scope_metrics.metrics]
        return found

    def logs(self) -> list[tuple[dict[str, Any], Any]]:
        """Every received log record with its resource attributes."""
        found = []
        for request in list(self.log_requests):
            for resource_logs in request.resource_logs:
                resource = attributes(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    found += [(resource, record) for record in scope_logs.log_records]
        return found

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> dict of plain values."""
    result = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        result[pair.key] = getattr(pair.value, kind) if kind else None
    return result
