"""ResilientTransport against a real upstream on 127.0.0.1: retries, traces, deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.openmetrics import exposition as openmetrics

import buttress
from buttress import Bulkhead, CircuitBreaker
from buttress.deadline import deadline_scope
from buttress.events import RetryFinished, RetryScheduled, TimeoutExpired
from buttress.httpx import ResilientTransport
from buttress.testing import FakeClock, capture_events
from tests._services import free_port

from ._transport_support import Tracing, sample, with_retry
from ._upstream import Upstream

INTERNAL = ["127.0.0.1"]


def client(tracing: Tracing, clock: FakeClock | None = None, **options: object) -> httpx.Client:
    """A client whose retries wait on ``clock`` (a fake one: waits are recorded, not slept)."""
    clock = clock or FakeClock()
    options.setdefault("internal_hosts", INTERNAL)  # the test upstream is one of ours
    transport = ResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        clock=clock,
        **with_retry(options, clock, clock.sleep),
    )
    return httpx.Client(transport=transport)


def real_time_client(tracing: Tracing) -> httpx.Client:
    """A client on the real monotonic clock, for deadlines bound by ``timeout`` or I/O."""
    transport = ResilientTransport(
        tracer_provider=tracing.provider,
        metrics_registry=tracing.metrics,
        internal_hosts=INTERNAL,
        **with_retry({}, time.monotonic, lambda s: None),
    )
    return httpx.Client(transport=transport)


# --- what is retried ----------------------------------------------------------------------


def test_get_is_retried_on_503_until_it_succeeds(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http, capture_events() as events:
        response = http.get(f"{upstream.url}/flaky/a/2")
    assert response.status_code == 200
    assert upstream.hits("/flaky/a/2") == 3
    retries = [e for e in events if isinstance(e, RetryScheduled | RetryFinished)]
    assert [type(e) for e in retries] == [RetryScheduled, RetryScheduled, RetryFinished]
    assert retries[-1] == RetryFinished(f"httpx:127.0.0.1:{upstream.port}", 3, "success", "")


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_each_retryable_status_is_retried(
    tracing: Tracing, upstream: Upstream, status: int
) -> None:
    with client(tracing, attempts=2) as http:
        response = http.get(f"{upstream.url}/status/{status}")
    assert response.status_code == status
    assert upstream.hits(f"/status/{status}") == 2


@pytest.mark.parametrize("status", [400, 404, 500, 501])
def test_other_statuses_are_not_retried(tracing: Tracing, upstream: Upstream, status: int) -> None:
    with client(tracing) as http:
        response = http.get(f"{upstream.url}/status/{status}")
    assert response.status_code == status
    assert upstream.hits(f"/status/{status}") == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_methods_are_retried(tracing: Tracing, upstream: Upstream, method: str) -> None:
    with client(tracing, attempts=2) as http:
        response = http.request(method, f"{upstream.url}/status/503")
    assert response.status_code == 503
    assert upstream.hits("/status/503") == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_other_methods_are_sent_once(tracing: Tracing, upstream: Upstream, method: str) -> None:
    with client(tracing) as http, capture_events() as events:
        response = http.request(method, f"{upstream.url}/status/503", content=b"x")
    assert response.status_code == 503
    assert upstream.hits("/status/503") == 1
    assert [e for e in events if isinstance(e, RetryScheduled | RetryFinished)] == []


def test_post_with_an_idempotency_key_is_retried(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http:
        response = http.post(
            f"{upstream.url}/flaky/k/1", json={"a": 1}, headers={"Idempotency-Key": "abc"}
        )
    assert response.status_code == 200
    assert upstream.hits("/flaky/k/1") == 2


def test_a_streamed_body_is_never_sent_twice(tracing: Tracing, upstream: Upstream) -> None:
    def body() -> object:
        yield b"part"

    with client(tracing) as http:
        response = http.put(f"{upstream.url}/status/503", content=body())  # type: ignore[arg-type]
    assert response.status_code == 503
    assert upstream.hits("/status/503") == 1


def test_the_last_response_is_returned_readable(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing, attempts=3) as http:
        response = http.get(f"{upstream.url}/status/503")
    assert response.status_code == 503
    assert response.text == "status 503"
    assert upstream.hits("/status/503") == 3


def test_a_dropped_connection_is_retried_and_its_error_raised_unchanged(
    tracing: Tracing, upstream: Upstream
) -> None:
    with client(tracing, attempts=3) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{upstream.url}/drop")
    assert upstream.hits("/drop") == 3


def test_connection_refused_is_retried_then_raised(tracing: Tracing) -> None:
    url = f"http://127.0.0.1:{free_port()}/ok"
    http = client(tracing, attempts=3)
    with http, capture_events() as events, pytest.raises(httpx.ConnectError):
        http.get(url)
    assert events[-1].attempts == 3  # type: ignore[union-attr]
    assert events[-1].error_type == "ConnectError"  # type: ignore[union-attr]
    assert len(tracing.spans(SpanKind.CLIENT)) == 3


def test_read_timeouts_are_not_retried(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http, pytest.raises(httpx.ReadTimeout):
        http.get(f"{upstream.url}/slow/0.5", timeout=0.05)
    assert upstream.hits("/slow/0.5") == 1


# --- Retry-After ----------------------------------------------------------------------------


def test_retry_after_seconds_are_the_wait(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    with client(tracing, clock, attempts=2) as http:
        http.get(f"{upstream.url}/status/503?retry_after=3")
    assert clock.sleeps == [3.0]


def test_a_retry_after_date_is_honoured(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    when = formatdate(time.time() + 4, usegmt=True).replace(" ", "+")
    with client(tracing, clock, attempts=2) as http:
        http.get(f"{upstream.url}/status/429?retry_after={when}")
    assert len(clock.sleeps) == 1
    assert 2.0 < clock.sleeps[0] <= 4.0


def test_a_retry_after_beyond_retry_after_max_is_not_retried_early(
    tracing: Tracing, upstream: Upstream
) -> None:
    clock = FakeClock()
    with client(tracing, clock, retry_after_max=5, wait_max=60) as http:
        response = http.get(f"{upstream.url}/status/503?retry_after=120")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "120"
    assert upstream.hits("/status/503") == 1
    assert clock.sleeps == []


def test_without_retry_after_the_backoff_applies(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    with client(tracing, clock, attempts=3, wait_initial=0.5, wait_max=5) as http:
        http.get(f"{upstream.url}/status/503")
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5
    assert 0 <= clock.sleeps[1] <= 1.0


# --- propagation and spans -------------------------------------------------------------------


def test_upstream_server_span_is_a_child_of_the_client_span(
    tracing: Tracing, upstream: Upstream
) -> None:
    tracer = tracing.provider.get_tracer("test")
    with client(tracing) as http, tracer.start_as_current_span("caller") as caller:
        http.get(f"{upstream.url}/flaky/t/1")
    clients = tracing.spans(SpanKind.CLIENT)
    servers = tracing.spans(SpanKind.SERVER)
    assert len(clients) == 2
    assert len(servers) == 2
    trace_id = caller.get_span_context().trace_id
    for client_span, server_span, seen in zip(clients, servers, upstream.seen, strict=True):
        assert client_span.parent is not None
        assert client_span.parent.span_id == caller.get_span_context().span_id
        assert server_span.parent is not None
        assert server_span.parent.span_id == client_span.context.span_id
        assert server_span.context.trace_id == trace_id
        assert seen.headers["traceparent"].split("-")[2] == format(
            client_span.context.span_id, "016x"
        )


def test_client_span_attributes_follow_the_conventions(
    tracing: Tracing, upstream: Upstream
) -> None:
    with client(tracing) as http:
        http.get(f"{upstream.url}/flaky/s/1?token=secret&page=2")
    first, second = tracing.spans(SpanKind.CLIENT)
    assert first.name == "GET"
    assert first.kind == SpanKind.CLIENT
    assert first.attributes is not None
    assert second.attributes is not None
    assert dict(first.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": upstream.port,
        "url.full": f"{upstream.url}/flaky/s/1?token=REDACTED&page=2",
        "http.response.status_code": 503,
        "error.type": "503",
    }
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200
    assert "error.type" not in second.attributes
    assert second.status.status_code == StatusCode.UNSET


def test_userinfo_never_reaches_the_span(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http:
        http.get(f"http://user:pw@127.0.0.1:{upstream.port}/ok")
    (span,) = tracing.spans(SpanKind.CLIENT)
    assert span.attributes is not None
    assert span.attributes["url.full"] == f"{upstream.url}/ok"


def test_a_failed_attempt_span_says_why(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{upstream.url}/drop")
    (span,) = tracing.spans(SpanKind.CLIENT)
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RemoteProtocolError"
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code == StatusCode.ERROR


def test_the_correlation_id_is_forwarded(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http, buttress.bound_correlation_id("req-123"):
        http.get(f"{upstream.url}/ok")
        http.get(f"{upstream.url}/ok", headers={"X-Request-ID": "chosen"})
    assert [s.headers["x-request-id"] for s in upstream.seen] == ["req-123", "chosen"]
    assert tracing.spans(SpanKind.CLIENT)[0].attributes["buttress.request_id"] == "req-123"  # type: ignore[index]


def test_no_correlation_id_outside_a_request(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http:
        http.get(f"{upstream.url}/ok")
    assert "x-request-id" not in upstream.seen[0].headers


def test_the_request_id_header_can_be_renamed_or_off(tracing: Tracing, upstream: Upstream) -> None:
    with buttress.bound_correlation_id("abc"):
        with client(tracing, request_id_header="X-Correlation-ID") as http:
            http.get(f"{upstream.url}/ok")
        with client(tracing, request_id_header=None) as http:
            http.get(f"{upstream.url}/ok")
    assert upstream.seen[0].headers["x-correlation-id"] == "abc"
    assert "x-request-id" not in upstream.seen[1].headers
    assert "x-correlation-id" not in upstream.seen[1].headers


# --- deadline -------------------------------------------------------------------------------


def test_the_time_left_travels_as_a_header(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    with client(tracing, clock) as http:
        with deadline_scope(2.5, clock=clock):
            http.get(f"{upstream.url}/ok")
        http.get(f"{upstream.url}/ok")
    assert upstream.seen[0].headers["x-buttress-deadline"] == "2.500"
    assert "x-buttress-deadline" not in upstream.seen[1].headers


def test_a_timeout_around_the_call_is_the_deadline(tracing: Tracing, upstream: Upstream) -> None:
    with real_time_client(tracing) as http:
        buttress.timeout(4.0).call(http.get, f"{upstream.url}/ok")
    sent = float(upstream.seen[0].headers["x-buttress-deadline"])
    assert 0 < sent <= 4.0


def test_retries_spend_the_same_budget(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    with client(tracing, clock, attempts=3) as http, deadline_scope(10.0, clock=clock):
        http.get(f"{upstream.url}/status/503?retry_after=2")
    sent = [s.headers["x-buttress-deadline"] for s in upstream.seen]
    assert sent == ["10.000", "8.000", "6.000"]


def test_a_spent_deadline_sends_nothing(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    scope = deadline_scope(1.0, clock=clock)
    with client(tracing, clock) as http, capture_events() as events, scope:
        clock.advance(1.0)
        for send in (http.get, http.post):
            with pytest.raises(buttress.TimedOut):
                send(f"{upstream.url}/ok")
    assert upstream.seen == []
    assert tracing.spans(SpanKind.CLIENT) == []
    name = f"httpx:127.0.0.1:{upstream.port}"
    assert events == [TimeoutExpired(name, 0.0), TimeoutExpired(name, 0.0)]


def test_no_retry_wait_crosses_the_deadline(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    with client(tracing, clock, attempts=5) as http, deadline_scope(5.0, clock=clock):
        response = http.get(f"{upstream.url}/status/503?retry_after=2")
    assert response.status_code == 503
    assert upstream.hits("/status/503") == 3  # at 5.0, 3.0 and 1.0 seconds left
    assert clock.sleeps == [2.0, 2.0]


def test_the_deadline_caps_the_attempt_timeout(tracing: Tracing, upstream: Upstream) -> None:
    # A real slow upstream: the client's 5 s timeout would wait; the 0.2 s budget does not.
    # The budget, not the upstream, ended the attempt: DeadlineExceeded, from the timeout.
    with (
        real_time_client(tracing) as http,
        deadline_scope(0.2),
        pytest.raises(buttress.DeadlineExceeded) as raised,
    ):
        http.get(f"{upstream.url}/slow/3", timeout=5.0)
    assert isinstance(raised.value.__cause__, httpx.ReadTimeout)


def test_the_caller_timeout_is_kept_when_shorter() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    clock = FakeClock()
    transport = ResilientTransport(httpx.MockTransport(handler), clock=clock)
    with httpx.Client(transport=transport) as http, deadline_scope(3.0, clock=clock):
        http.get("http://example.test/", timeout=httpx.Timeout(5.0, connect=1.0))
    assert seen == [{"connect": 1.0, "read": 3.0, "write": 3.0, "pool": 3.0}]


# --- metrics ---------------------------------------------------------------------------------


def test_every_attempt_is_timed(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http:
        http.get(f"{upstream.url}/flaky/m/1")
    labels = {"http_request_method": "GET", "server_address": "127.0.0.1"}
    count = "http_client_request_duration_seconds_count"
    assert sample(tracing.metrics, count, **labels, http_response_status_code="503") == 1
    assert sample(tracing.metrics, count, **labels, http_response_status_code="200") == 1
    assert sample(tracing.metrics, "http_client_active_requests", **labels) == 0


def test_failed_attempts_are_timed_without_a_status(tracing: Tracing) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with client(tracing, attempts=2) as http, pytest.raises(httpx.ConnectError):
        http.get(url)
    count = sample(
        tracing.metrics,
        "http_client_request_duration_seconds_count",
        http_request_method="GET",
        server_address="127.0.0.1",
        http_response_status_code="",
    )
    assert count == 2


def test_unknown_methods_share_one_label(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing) as http:
        http.request("PURGE", f"{upstream.url}/ok")
    (span,) = tracing.spans(SpanKind.CLIENT)
    assert span.name == "HTTP"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"
    count = sample(
        tracing.metrics,
        "http_client_request_duration_seconds_count",
        http_request_method="_OTHER",
        server_address="127.0.0.1",
        http_response_status_code="200",
    )
    assert count == 1


# --- per-host policies --------------------------------------------------------------------------


def test_each_host_has_its_own_policy(tracing: Tracing, upstream: Upstream) -> None:
    with Upstream() as other, client(tracing, attempts=2) as http, capture_events() as events:
        http.get(f"{upstream.url}/status/503")
        http.get(f"{other.url}/status/503")
    names = {e.name for e in events}
    assert names == {f"httpx:127.0.0.1:{upstream.port}", f"httpx:127.0.0.1:{other.port}"}


# --- circuit breaker and bulkhead ----------------------------------------------------------


def breaker_factory(clock: FakeClock, **options: object) -> Callable[[str], CircuitBreaker]:
    def make(name: str) -> CircuitBreaker:
        return CircuitBreaker(name, clock=clock, **options)  # type: ignore[arg-type]

    return make


def test_the_breaker_opens_and_recovers(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    breaker = breaker_factory(clock, consecutive_failures=3, reset_timeout=10)
    with client(tracing, clock, breaker=breaker) as http:
        for _ in range(3):  # 500 is not retried, but it is a failure
            assert http.get(f"{upstream.url}/status/500").status_code == 500
        with pytest.raises(buttress.CircuitOpen) as refused:
            http.get(f"{upstream.url}/ok")
        assert refused.value.retry_after == 10
        assert upstream.hits("/ok") == 0
        clock.advance(10)
        assert http.get(f"{upstream.url}/ok").status_code == 200  # the trial call
        assert http.get(f"{upstream.url}/ok").status_code == 200
    assert upstream.hits("/ok") == 2


def test_what_counts_as_a_failure(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    breaker = breaker_factory(clock, consecutive_failures=2)
    with client(tracing, clock, breaker=breaker, attempts=1) as http:
        for path in ("/status/404", "/status/429", "/ok", "/status/400", "/status/404"):
            http.get(f"{upstream.url}{path}")
        http.get(f"{upstream.url}/status/502")
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"{upstream.url}/drop")
        with pytest.raises(buttress.CircuitOpen):
            http.get(f"{upstream.url}/ok")


def test_retried_attempts_each_count(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    breaker = breaker_factory(clock, consecutive_failures=3)
    http = client(tracing, clock, breaker=breaker, attempts=5)
    with http, pytest.raises(buttress.CircuitOpen):
        http.get(f"{upstream.url}/status/503")
    assert upstream.hits("/status/503") == 3


def test_an_open_breaker_between_attempts_frees_the_last_response() -> None:
    opened: list[httpx.Response] = []

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(503, stream=httpx.ByteStream(b"busy"))
        opened.append(response)
        return response

    clock = FakeClock()
    transport = ResilientTransport(
        httpx.MockTransport(handler),
        breaker=breaker_factory(clock, consecutive_failures=2),
        clock=clock,
        **with_retry({}, clock, clock.sleep),
    )
    with httpx.Client(transport=transport) as http, pytest.raises(buttress.CircuitOpen):
        http.get("http://a.test/")
    assert len(opened) == 2
    assert all(r.is_closed for r in opened)


def test_each_host_has_its_own_breaker(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    breaker = breaker_factory(clock, consecutive_failures=1)
    with Upstream() as other, client(tracing, clock, breaker=breaker, attempts=1) as http:
        http.get(f"{upstream.url}/status/500")
        with pytest.raises(buttress.CircuitOpen) as refused:
            http.get(f"{upstream.url}/ok")
        assert http.get(f"{other.url}/ok").status_code == 200
    assert refused.value.name == f"httpx:127.0.0.1:{upstream.port}"


def test_one_given_breaker_guards_every_host(tracing: Tracing, upstream: Upstream) -> None:
    clock = FakeClock()
    shared = CircuitBreaker("shared", consecutive_failures=1, clock=clock)
    with Upstream() as other, client(tracing, clock, breaker=shared, attempts=1) as http:
        http.get(f"{upstream.url}/status/500")
        with pytest.raises(buttress.CircuitOpen):
            http.get(f"{other.url}/ok")
    assert shared.state == "open"


def test_the_breaker_can_be_off(tracing: Tracing, upstream: Upstream) -> None:
    with client(tracing, breaker=None, attempts=1) as http:
        for _ in range(10):
            assert http.get(f"{upstream.url}/status/500").status_code == 500


def test_a_full_bulkhead_refuses_without_sending(tracing: Tracing, upstream: Upstream) -> None:
    made: list[Bulkhead] = []

    def bulkhead(name: str) -> Bulkhead:
        made.append(Bulkhead(name, max_concurrent=1))
        return made[-1]

    with client(tracing, bulkhead=bulkhead) as http:
        assert http.get(f"{upstream.url}/ok").status_code == 200
        (only,) = made
        with only, pytest.raises(buttress.BulkheadFull):  # its one slot is taken
            http.get(f"{upstream.url}/ok")
        assert http.get(f"{upstream.url}/ok").status_code == 200
    assert upstream.hits("/ok") == 2


@pytest.mark.parametrize(
    ("option", "value"), [("breaker", "yes"), ("bulkhead", 10), ("breaker", Bulkhead("b"))]
)
def test_bad_breaker_and_bulkhead_options(option: str, value: object) -> None:
    with pytest.raises(buttress.ConfigurationError, match=option):
        ResilientTransport(**{option: value})  # type: ignore[arg-type]


def test_a_factory_must_return_the_right_strategy() -> None:
    transport = ResilientTransport(httpx.MockTransport(lambda r: httpx.Response(200)), breaker=str)  # type: ignore[arg-type]
    with httpx.Client(transport=transport) as http, pytest.raises(buttress.ConfigurationError):
        http.get("http://a.test/")


def test_the_duration_carries_the_client_span_as_exemplar(
    tracing: Tracing, upstream: Upstream
) -> None:
    with client(tracing) as http:
        http.get(f"{upstream.url}/ok")
    (span,) = tracing.spans(SpanKind.CLIENT)
    exposition = openmetrics.generate_latest(tracing.metrics).decode()  # type: ignore[no-untyped-call]
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    assert f'# {{span_id="{span_id}",trace_id="{trace_id}"}}' in exposition
