"""Admission control in the ASGI and WSGI shells, in process: refusals, permits, telemetry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from buttress import ConfigurationError
from buttress.events import AdmissionDecided, RateLimitRejected, Registry
from buttress.middleware import (
    Admission,
    ASGIMiddleware,
    Health,
    RateLimit,
    RequestView,
    TrustedPeers,
    WSGIMiddleware,
)
from buttress.telemetry import _names as names
from buttress.telemetry._listeners import PrometheusListener, SpanListener
from buttress.testing import capture_events

from ._support import Telemetry, call_asgi, response_header

PEERS = TrustedPeers(networks=["127.0.0.0/8"])
CRITICALITY = names.CRITICALITY_HEADER.lower().encode()
DEADLINE = names.DEADLINE_HEADER.lower().encode()


def _status(messages: list[dict[str, Any]]) -> int:
    start = next(m for m in messages if m["type"] == "http.response.start")
    status: int = start["status"]
    return status


class Gate:
    """An ASGI app whose requests wait until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = 0
        self.open = asyncio.Event()
        self.fail: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        await self.open.wait()
        if self.fail is not None:
            raise self.fail
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _middleware(app: Any, admission: Admission, **options: Any) -> ASGIMiddleware:
    return ASGIMiddleware(app, admission=admission, metrics_registry=CollectorRegistry(), **options)


async def _eventually(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_over_the_limit_a_request_is_shed_with_503_and_retry_after() -> None:
    gate = Gate()
    admission = Admission(limit=1, retry_after=2.0)
    app = _middleware(gate, admission)
    first = asyncio.ensure_future(call_asgi(app, "/work"))
    await _eventually(lambda: gate.entered == 1)
    shed = await call_asgi(app, "/work")
    assert _status(shed) == 503
    assert response_header(shed, b"retry-after") == b"2"
    assert response_header(shed, b"x-request-id") is not None  # still observed
    assert gate.entered == 1  # the app never saw it
    gate.open.set()
    assert _status(await first) == 200
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0
    assert _status(await call_asgi(app, "/work")) == 200


@pytest.mark.parametrize("failure", [RuntimeError("boom"), asyncio.CancelledError()])
async def test_the_permit_comes_back_when_the_app_fails_or_is_cancelled(
    failure: BaseException,
) -> None:
    gate = Gate()
    gate.fail = failure
    admission = Admission(limit=1)
    app = _middleware(gate, admission)
    gate.open.set()
    with pytest.raises(type(failure)):
        await call_asgi(app, "/work")
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0


async def test_the_permit_comes_back_when_the_task_is_cancelled_while_the_app_waits() -> None:
    gate = Gate()
    admission = Admission(limit=1)
    app = _middleware(gate, admission)
    task = asyncio.ensure_future(call_asgi(app, "/work"))
    await _eventually(lambda: gate.entered == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0


async def test_criticality_from_an_untrusted_client_is_ignored_from_a_peer_honoured() -> None:
    gate = Gate()
    gate.open.set()
    with capture_events() as events:
        untrusted = _middleware(gate, Admission(limit=5))
        await call_asgi(untrusted, "/x", headers=[(CRITICALITY, b"critical")])
        trusted = _middleware(gate, Admission(limit=5), trusted_peers=PEERS)
        await call_asgi(trusted, "/x", headers=[(CRITICALITY, b"Sheddable")])
        routed = _middleware(gate, Admission(limit=5, routes={"/reports/{id}": "sheddable"}))
        await call_asgi(routed, "/reports/7")
        await call_asgi(routed, "/reports/7/more")  # a template matches whole segments
    decided = [e.criticality for e in events.of_type(AdmissionDecided)]
    assert decided == ["default", "sheddable", "sheddable", "default"]


async def test_sheddable_requests_are_shed_before_critical_ones() -> None:
    gate = Gate()
    app = _middleware(gate, Admission(limit=4), trusted_peers=PEERS)
    held = [asyncio.ensure_future(call_asgi(app, "/w")) for _ in range(3)]
    await _eventually(lambda: gate.entered == 3)
    # 3 in flight of 4: past the sheddable share (75%), within the critical one.
    sheddable = await call_asgi(app, "/w", headers=[(CRITICALITY, b"sheddable")])
    assert _status(sheddable) == 503
    critical = asyncio.ensure_future(call_asgi(app, "/w", headers=[(CRITICALITY, b"critical")]))
    await _eventually(lambda: gate.entered == 4)
    gate.open.set()
    assert [_status(m) for m in await asyncio.gather(*held, critical)] == [200] * 4


async def test_a_deadline_that_cannot_be_met_is_refused_before_the_app_runs() -> None:
    gate = Gate()
    gate.open.set()
    app = _middleware(gate, Admission(limit=5), trusted_peers=PEERS)
    refused = await call_asgi(app, "/w", headers=[(DEADLINE, b"0")])
    assert _status(refused) == 504
    assert gate.entered == 0
    assert _status(await call_asgi(app, "/w", headers=[(DEADLINE, b"5")])) == 200
    # From a client that is not a trusted peer the deadline is not honoured at all.
    untrusted = _middleware(gate, Admission(limit=5))
    assert _status(await call_asgi(untrusted, "/w", headers=[(DEADLINE, b"0")])) == 200


async def test_deadline_shedding_can_be_switched_off() -> None:
    gate = Gate()
    gate.open.set()
    app = _middleware(gate, Admission(limit=5, shed_deadlines=False), trusted_peers=PEERS)
    assert _status(await call_asgi(app, "/w", headers=[(DEADLINE, b"0")])) == 200


async def test_a_rate_limit_answers_429_with_the_ietf_fields() -> None:
    gate = Gate()
    gate.open.set()
    rule = RateLimit("api", rate=2, per=60, routes=["/api/{rest:path}"])
    app = _middleware(gate, Admission(limit=None, rate_limits=[rule]))
    with capture_events() as events:
        statuses = [_status(await call_asgi(app, "/api/orders/1")) for _ in range(2)]
        refused = await call_asgi(app, "/api/orders/1")
        other_route = await call_asgi(app, "/health-check")
    assert statuses == [200, 200]
    assert _status(refused) == 429
    assert response_header(refused, b"ratelimit-policy") == b'"api";q=2;w=60'
    limit_field = response_header(refused, b"ratelimit")
    assert limit_field is not None
    assert limit_field.startswith(b'"api";r=0;t=')
    retry_after = response_header(refused, b"retry-after")
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 30
    assert _status(other_route) == 200  # not a route the rule covers
    assert events.count(RateLimitRejected, name="api") == 1
    assert events.count(AdmissionDecided, outcome="rate_limited", rule="api") == 1


async def _call_from(app: Any, address: str, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/p",
        "headers": headers,
        "client": (address, 40000),
        "query_string": b"",
    }
    await app(scope, receive, send)
    return _status(sent)


async def test_buckets_are_per_client_per_api_key_and_for_users_only_from_peers() -> None:
    gate = Gate()
    gate.open.set()
    by_client = _middleware(gate, Admission(limit=None, rate_limits=[RateLimit("c", rate=1)]))
    assert await _call_from(by_client, "10.0.0.1", []) == 200
    assert await _call_from(by_client, "10.0.0.1", []) == 429
    assert await _call_from(by_client, "10.0.0.2", []) == 200
    # One IPv6 host rotating addresses within its /64 shares one bucket.
    assert await _call_from(by_client, "2001:db8::1", []) == 200
    assert await _call_from(by_client, "2001:db8::2", []) == 429

    keyed = RateLimit("k", rate=1, key="header", header="X-API-Key")
    by_key = _middleware(gate, Admission(limit=None, rate_limits=[keyed]))
    assert await _call_from(by_key, "10.0.0.1", [(b"x-api-key", b"alpha")]) == 200
    assert await _call_from(by_key, "10.0.0.2", [(b"x-api-key", b"alpha")]) == 429
    assert await _call_from(by_key, "10.0.0.1", [(b"x-api-key", b"beta")]) == 200

    users = RateLimit("u", rate=1, key="user", header="X-User-ID")
    by_user = _middleware(
        gate,
        Admission(limit=None, rate_limits=[users]),
        trusted_peers=TrustedPeers(networks=["10.9.0.0/16"]),
    )
    # From the gateway (a trusted peer) the user id is the key...
    assert await _call_from(by_user, "10.9.0.1", [(b"x-user-id", b"ann")]) == 200
    assert await _call_from(by_user, "10.9.0.1", [(b"x-user-id", b"bob")]) == 200
    assert await _call_from(by_user, "10.9.0.1", [(b"x-user-id", b"ann")]) == 429
    # ...from anyone else, the claimed id is ignored: the client address is the key.
    assert await _call_from(by_user, "10.0.0.7", [(b"x-user-id", b"carl")]) == 200
    assert await _call_from(by_user, "10.0.0.7", [(b"x-user-id", b"dora")]) == 429


async def test_a_client_cannot_grow_the_number_of_buckets_without_bound() -> None:
    gate = Gate()
    gate.open.set()
    rule = RateLimit("k", rate=1, key="header", header="X-API-Key", max_keys=50)
    app = _middleware(gate, Admission(limit=None, rate_limits=[rule]))
    for i in range(200):
        await _call_from(app, "10.0.0.1", [(b"x-api-key", f"key-{i}".encode() * 100)])
    assert rule.keys_kept == 50


async def test_a_key_function_decides_the_bucket() -> None:
    gate = Gate()
    gate.open.set()

    def tenant(request: RequestView) -> str | None:
        return request.header("X-Tenant")

    app = _middleware(gate, Admission(limit=None, rate_limits=[RateLimit("t", rate=1, key=tenant)]))
    assert await _call_from(app, "10.0.0.1", [(b"x-tenant", b"a")]) == 200
    assert await _call_from(app, "10.0.0.2", [(b"x-tenant", b"a")]) == 429
    assert await _call_from(app, "10.0.0.2", [(b"x-tenant", b"b")]) == 200


async def test_every_decision_is_a_metric_a_span_attribute_and_an_access_log_field(
    caplog: pytest.LogCaptureFixture, telemetry: Telemetry
) -> None:
    caplog.set_level("INFO", logger="buttress.access")
    gate = Gate()
    # The default listeners, on a registry of the test's own: metrics and span events.
    events = Registry()
    events.add(PrometheusListener(telemetry.registry))
    events.add(SpanListener())
    admission = Admission("front", limit=1, events=events)
    app = ASGIMiddleware(gate, admission=admission, **telemetry.options())
    first = asyncio.ensure_future(call_asgi(app, "/w"))
    await _eventually(lambda: gate.entered == 1)
    await call_asgi(app, "/w")
    gate.open.set()
    await first
    for outcome in ("shed", "admitted"):
        labels = {"policy": "front", "outcome": outcome, "criticality": "default"}
        counted = telemetry.registry.get_sample_value(names.ADMISSION_REQUESTS, labels)
        assert counted == 1
    spans = {
        str((s.attributes or {}).get(names.ATTR_ADMISSION_OUTCOME)): s for s in telemetry.spans()
    }
    assert sorted(spans) == ["admitted", "shed"]
    assert spans["shed"].attributes is not None
    assert spans["shed"].attributes[names.ATTR_ADMISSION_CRITICALITY] == "default"
    assert [e.name for e in spans["shed"].events] == [names.EVENT_ADMISSION]
    assert list(spans["admitted"].events) == []  # admitted requests add no span event
    access = [r for r in caplog.records if r.name == "buttress.access"]
    assert sorted(getattr(r, names.LOG_KEY_ADMISSION) for r in access) == ["admitted", "shed"]


def _wsgi_app(seen: list[str]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def _environ(path: str, **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        **extra,
    }


def test_wsgi_holds_the_permit_until_the_body_is_closed() -> None:
    seen: list[str] = []
    admission = Admission(limit=1)
    app = WSGIMiddleware(_wsgi_app(seen), admission=admission, metrics_registry=CollectorRegistry())
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = app(_environ("/a"), start_response)
    assert list(app(_environ("/b"), start_response)) == [
        b"Service Unavailable: overloaded, retry later\n"
    ]
    assert statuses == ["200 OK", "503 Service Unavailable"]
    assert seen == ["/a"]
    assert list(body) == [b"ok"]
    body.close()  # type: ignore[attr-defined]
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0


def test_wsgi_gives_the_permit_back_when_the_app_raises_any_exception() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyboardInterrupt

    admission = Admission(limit=1)
    wrapped = WSGIMiddleware(app, admission=admission, metrics_registry=CollectorRegistry())
    with pytest.raises(KeyboardInterrupt):
        wrapped(_environ("/a"), lambda *a: lambda data: None)
    assert admission.concurrency is not None
    assert admission.concurrency.in_flight == 0


def test_wsgi_deadline_and_rate_limit_refusals() -> None:
    seen: list[str] = []
    admission = Admission(limit=None, rate_limits=[RateLimit("r", rate=1, key="global")])
    app = WSGIMiddleware(
        _wsgi_app(seen),
        admission=admission,
        trusted_peers=PEERS,
        metrics_registry=CollectorRegistry(),
    )
    statuses: list[str] = []
    headers_seen: list[dict[str, str]] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        headers_seen.append({k.lower(): v for k, v in headers})
        return lambda data: None

    app(_environ("/a", HTTP_X_BUTTRESS_DEADLINE="0.000"), start_response)
    app(_environ("/a"), start_response)
    app(_environ("/a"), start_response)
    assert statuses == ["504 Gateway Timeout", "200 OK", "429 Too Many Requests"]
    assert headers_seen[2]["ratelimit-policy"] == '"r";q=1;w=1'
    assert seen == ["/a"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Admission(limit=0), "fixed limit"),
        (lambda: Admission(limit="fast"), "'fast'"),  # type: ignore[arg-type]
        (lambda: Admission(routes={"/a": "urgent"}), "'urgent'"),  # type: ignore[dict-item]
        (lambda: Admission(routes={"a": "critical"}), "'a'"),
        (lambda: Admission(retry_after=-1), "retry_after"),
        (lambda: Admission(rate_limits=[RateLimit("a", rate=1), RateLimit("a", rate=2)]), "'a'"),
        (lambda: RateLimit("a b", rate=1), "'a b'"),
        (lambda: RateLimit("a", rate=0), "rate"),
        (lambda: RateLimit("a", rate=1, key="header"), "header="),
        (lambda: RateLimit("a", rate=1, key="ip"), "'ip'"),  # type: ignore[arg-type]
        (lambda: RateLimit("a", rate=1, header="X-Key"), "header="),
        (lambda: RateLimit("a", rate=1, max_keys=0), "max_keys"),
        (lambda: ASGIMiddleware(Gate(), admission="yes"), "'yes'"),  # type: ignore[arg-type]
    ],
)
def test_bad_configuration_is_refused_by_name(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_wsgi_health_reports_bulkheads_admission_and_checks() -> None:
    import json

    from buttress import Bulkhead

    reports = Bulkhead("reports", max_concurrent=1)
    admission = Admission(limit=1)

    def database() -> bool:
        raise ConnectionError("postgres://user:secret@db/prod is down")

    health = Health(
        bulkheads=[reports], admission=admission, checks={"database": database, "ok": lambda: True}
    )
    seen: list[str] = []
    registry = CollectorRegistry()
    app = WSGIMiddleware(_wsgi_app(seen), health=health, metrics_registry=registry)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = json.loads(b"".join(app(_environ("/readyz"), start_response)))
    assert statuses == ["503 Service Unavailable"]
    assert body["status"] == "DOWN"
    assert body["components"]["database"] == {
        "status": "DOWN",
        "details": {"error": "ConnectionError"},  # never the message: it may hold secrets
    }
    assert body["components"]["ok"] == {"status": "UP"}
    assert body["components"]["bulkhead:reports"]["status"] == "UP"
    reports.acquire()  # the one slot taken, and no waiting place: full
    body = json.loads(b"".join(app(_environ("/readyz"), start_response)))
    assert body["components"]["bulkhead:reports"]["status"] == "DOWN"
    reports.release()
    assert list(app(_environ("/livez"), start_response)) == [b'{"status":"UP"}']
    assert seen == []  # probes never reach the app


def test_readiness_is_down_while_admission_sheds_most_requests() -> None:
    admission = Admission(limit=1)
    health = Health(admission=admission)
    assert admission.concurrency is not None
    held = admission.concurrency.acquire()
    assert held is not None
    for _ in range(3):
        assert admission.concurrency.acquire() is None
    report = health.readiness()
    assert report["status"] == "DOWN"
    assert report["components"]["admission:inbound"]["details"]["shed_since_last_probe"] == 0.75
    admission.concurrency.release(held)
    assert admission.concurrency.acquire() is not None  # admitted since the last probe, none shed
    assert health.readiness()["status"] == "UP"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"live_path": "livez"}, "'livez'"),
        ({"live_path": "/h", "ready_path": "/h"}, "'/h'"),
        ({"breakers": ["payments"]}, "'payments'"),
        ({"checks": {"db": "SELECT 1"}}, "'db'"),
        ({"admission": "yes"}, "'yes'"),
    ],
)
def test_bad_health_configuration_is_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Health(**options)


async def test_excluded_paths_such_as_probes_are_never_refused() -> None:
    gate = Gate()
    app = _middleware(gate, Admission(limit=1))
    first = asyncio.ensure_future(call_asgi(app, "/work"))
    await _eventually(lambda: gate.entered == 1)
    probe = asyncio.ensure_future(call_asgi(app, "/healthz"))  # excluded by default
    await _eventually(lambda: gate.entered == 2)
    assert _status(await call_asgi(app, "/work")) == 503
    gate.open.set()
    assert [_status(m) for m in await asyncio.gather(first, probe)] == [200, 200]
