"""Per-request overhead of the middleware over a bare app, beside the stack a team would
otherwise assemble, at equal features: a server span through the SDK with a batch
processor, a duration histogram with route templates, a correlation id.

ASGI: a bare Starlette app driven in-process by a minimal server loop; the peer stack is
asgi-correlation-id + opentelemetry-instrumentation-asgi (send/receive spans off, so it
makes one span like us) + starlette-exporter (or prometheus-fastapi-instrumentator).
WSGI: a bare Flask app; the peer is opentelemetry-instrumentation-wsgi alone (spans only:
there is no common WSGI correlation-id or metrics middleware to pair it with).
Each case runs with every request sampled and with ParentBased(ALWAYS_OFF) (production
head sampling, no parent), and with 1 and 100 routes: the request hits the last route.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from benchmarks._harness import Result, compare_async, compare_sync, report
from buttress.middleware import ASGIMiddleware, WSGIMiddleware

HEADERS = [
    (b"host", b"api.example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip"),
]


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider(sampler: Sampler) -> TracerProvider:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=100_000))
    return provider


# --- ASGI ---------------------------------------------------------------------------------


def _starlette(routes: int) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    table = [Route(f"/r{i}/items/{{item_id}}", endpoint) for i in range(routes)]
    return Starlette(routes=table)


def _asgi_driver(app: Any, path: str) -> Callable[[], Awaitable[None]]:
    """A minimal in-process ASGI server loop: one request per call, responses dropped."""
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: Any) -> None:
        return None

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": list(HEADERS),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)

    return one


def _floor_asgi(app: Any, provider: TracerProvider) -> Any:
    """The floor: an SDK server span with ten attributes around the app, nothing else."""
    tracer = provider.get_tracer("floor")

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        span = tracer.start_span("GET", kind=SpanKind.SERVER)
        span.set_attributes({f"attr.{i}": i for i in range(10)})
        try:
            await app(scope, receive, send)
        finally:
            span.end()

    return middleware


def _asgi_contenders(routes: int, provider: TracerProvider) -> dict[str, Any]:
    from asgi_correlation_id import CorrelationIdMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette_exporter import PrometheusMiddleware

    path = f"/r{routes - 1}/items/42"
    bare = _starlette(routes)

    ours = _starlette(routes)
    ours.add_middleware(
        ASGIMiddleware, tracer_provider=provider, metrics_registry=CollectorRegistry()
    )

    peers = _starlette(routes)
    peers.add_middleware(PrometheusMiddleware, group_paths=True)
    peers.add_middleware(
        OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    peers.add_middleware(CorrelationIdMiddleware)

    contenders = {
        "bare": bare,
        "floor (SDK span, 10 attributes)": _floor_asgi(_starlette(routes), provider),
        "buttress": ours,
        "peers (asgi-correlation-id + otel-asgi + starlette-exporter)": peers,
    }
    try:
        from prometheus_fastapi_instrumentator import Instrumentator
    except ImportError:  # optional: the bench extra has it
        pass
    else:
        pfi = _starlette(routes)
        Instrumentator(registry=CollectorRegistry()).instrument(pfi)
        pfi.add_middleware(
            OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
        pfi.add_middleware(CorrelationIdMiddleware)
        contenders["peers (asgi-correlation-id + otel-asgi + instrumentator)"] = pfi
    return {name: _asgi_driver(app, path) for name, app in contenders.items()}


# --- WSGI ---------------------------------------------------------------------------------


def _flask(routes: int) -> Any:
    from flask import Flask

    app = Flask("bench")

    def endpoint(item_id: str) -> str:
        return "ok"

    for i in range(routes):
        app.add_url_rule(f"/r{i}/items/<item_id>", f"e{i}", endpoint)
    return app


def _wsgi_driver(app: Any, path: str) -> Callable[[], None]:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def one() -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "api.example.com",
            "HTTP_USER_AGENT": "bench/1.0",
            "HTTP_ACCEPT": "application/json",
            "wsgi.url_scheme": "http",
            "wsgi.input": None,
            "wsgi.errors": None,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        body: Iterable[bytes] = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return one


def _wsgi_contenders(routes: int, provider: TracerProvider) -> dict[str, Callable[[], object]]:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    path = f"/r{routes - 1}/items/42"
    bare = _flask(routes)
    ours = _flask(routes)
    ours.wsgi_app = WSGIMiddleware(
        ours.wsgi_app, tracer_provider=provider, metrics_registry=CollectorRegistry()
    )
    peer = _flask(routes)
    peer.wsgi_app = OpenTelemetryMiddleware(peer.wsgi_app, tracer_provider=provider)
    return {
        "bare": _wsgi_driver(bare, path),
        "buttress": _wsgi_driver(ours, path),
        "peer (otel-wsgi, spans only)": _wsgi_driver(peer, path),
    }


# --- report -------------------------------------------------------------------------------


def overhead_ratio(results: list[Result], ours: str, theirs: str, baseline: str = "bare") -> float:
    by_name = {r.name: r.best for r in results}
    return (by_name[ours] - by_name[baseline]) / (by_name[theirs] - by_name[baseline])


def _overhead(results: list[Result], name: str) -> float:
    by_name = {r.name: r.best for r in results}
    return by_name[name] - by_name["bare"]


def main(quick: bool = False) -> str:
    # Access lines are on but not emitted (the logger is not enabled for INFO), like the
    # peers, which have none.
    logging.getLogger("buttress.access").setLevel(logging.WARNING)
    # Many short rounds, best kept: on a shared machine the minimum is the stable figure.
    number, rounds = (200, 3) if quick else (1_000, 15)
    samplers = {"sampled": ALWAYS_ON, "not sampled": ParentBased(ALWAYS_OFF)}
    peer = "peers (asgi-correlation-id + otel-asgi + starlette-exporter)"
    pfi = "peers (asgi-correlation-id + otel-asgi + instrumentator)"
    otel = "peer (otel-wsgi, spans only)"
    sections: list[str] = []
    ratios = ["## middleware: overhead ratios (buttress / peers)", ""]
    ratios += ["| case | routes | vs starlette-exporter stack | vs instrumentator stack |"]
    ratios += ["|---|---|---|---|"]
    growth = ["## middleware: overhead with 100 routes / with 1 route", ""]
    growth += ["| case | contender | 100 routes / 1 route |", "|---|---|---|"]
    for label, sampler in samplers.items():
        provider = _provider(sampler)
        asgi: dict[int, list[Result]] = {}
        for routes in (1, 100):
            results = compare_async(
                _asgi_contenders(routes, provider), number=number, rounds=rounds
            )
            asgi[routes] = results
            title = f"middleware ASGI, {label}, {routes} route(s)"
            sections.append(report(title, results, baseline="bare", against=peer))
            has_pfi = any(r.name == pfi for r in results)
            alt = f"{overhead_ratio(results, 'buttress', pfi):.3f}" if has_pfi else "-"
            ratios.append(
                f"| ASGI {label} | {routes} | {overhead_ratio(results, 'buttress', peer):.3f} "
                f"| {alt} |"
            )
        for name in (r.name for r in asgi[1] if r.name != "bare"):
            factor = _overhead(asgi[100], name) / _overhead(asgi[1], name)
            growth.append(f"| ASGI {label} | {name} | {factor:.2f} |")
        wsgi: dict[int, list[Result]] = {}
        for routes in (1, 100):
            results = compare_sync(_wsgi_contenders(routes, provider), number=number, rounds=rounds)
            wsgi[routes] = results
            title = f"middleware WSGI, {label}, {routes} route(s)"
            sections.append(report(title, results, baseline="bare", against=otel))
            ratios.append(
                f"| WSGI {label} (vs otel-wsgi) | {routes} "
                f"| {overhead_ratio(results, 'buttress', otel):.3f} | - |"
            )
        for name in ("buttress", otel):
            factor = _overhead(wsgi[100], name) / _overhead(wsgi[1], name)
            growth.append(f"| WSGI {label} | {name} | {factor:.2f} |")
        provider.shutdown()
    return "\n".join(sections) + "\n" + "\n".join(ratios) + "\n\n" + "\n".join(growth) + "\n"
