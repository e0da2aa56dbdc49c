"""The broker-agnostic primitives: headers in and out, the consumer span, metrics, logs."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from buttress import ConfigurationError, bound_correlation_id, get_correlation_id, retry
from buttress import names as n
from buttress.deadline import current_deadline, deadline_scope, remaining
from buttress.jobs import Consumer, DeadLetter, InMemoryIdempotency, extract, inject
from buttress.middleware import TrustedPeers
from buttress.testing import FakeClock, capture_logs, capture_metrics

from ._spans import local_spans

SECRET = "s3cret-s3cret-s3cret"
PEERS = TrustedPeers(header="x-producer-secret", secret=SECRET)


def _produce(**scope: float) -> dict[str, str]:
    with local_spans() as spans:
        tracer = spans.provider.get_tracer("test")
        with (
            tracer.start_as_current_span("request"),
            bound_correlation_id("req-42"),
            deadline_scope(scope.get("deadline", 5.0)),
        ):
            headers = dict(inject({}, present=PEERS))
    return headers


def test_inject_writes_trace_request_id_deadline_and_presented_secret() -> None:
    headers = _produce(deadline=5.0)
    assert headers[n.HEADER_TRACEPARENT].startswith("00-")
    assert headers[n.MESSAGE_REQUEST_ID_HEADER] == "req-42"
    assert 4.0 < float(headers[n.MESSAGE_DEADLINE_HEADER]) <= 5.0
    assert headers["x-producer-secret"] == SECRET


def test_inject_outside_any_context_writes_nothing_of_ours() -> None:
    assert inject({}) == {}


def test_trusted_headers_are_honoured() -> None:
    headers = _produce()
    found = extract(headers, trusted_producers=PEERS)
    assert found.trusted
    assert found.request_id == "req-42"
    assert found.deadline is not None
    assert 4.0 < found.deadline <= 5.0
    parent = trace.get_current_span(found.parent).get_span_context()
    assert format(parent.trace_id, "032x") == headers[n.HEADER_TRACEPARENT].split("-")[1]
    assert found.links == ()


@pytest.mark.parametrize(
    "trust", [None, TrustedPeers(header="x-producer-secret", secret="another-secret-value")]
)
def test_untrusted_headers_are_linked_not_believed(trust: TrustedPeers | None) -> None:
    headers = _produce()
    found = extract(headers, trusted_producers=trust)
    assert not found.trusted
    assert found.request_id is None
    assert found.deadline is None
    assert not trace.get_current_span(found.parent).get_span_context().is_valid
    assert len(found.links) == 1


@pytest.mark.parametrize(
    "hostile",
    [
        {n.MESSAGE_REQUEST_ID_HEADER: "bad id\r\nX: y", n.MESSAGE_DEADLINE_HEADER: "1e9"},
        {n.MESSAGE_REQUEST_ID_HEADER: "x" * 5000, n.MESSAGE_DEADLINE_HEADER: "-1"},
        {n.MESSAGE_REQUEST_ID_HEADER: 12, n.MESSAGE_DEADLINE_HEADER: ["1"], "traceparent": {}},
        [(n.MESSAGE_REQUEST_ID_HEADER, b"\xff\xfe"), (7, "x"), ("traceparent", b"00-zz")],
    ],
)
def test_hostile_values_from_a_trusted_producer_are_dropped(hostile: object) -> None:
    found = extract(hostile, trusted_producers="any")  # type: ignore[arg-type]
    assert found.trusted
    assert found.request_id is None
    assert found.deadline is None
    assert not trace.get_current_span(found.parent).get_span_context().is_valid


def test_kafka_style_byte_pairs_are_read() -> None:
    headers = _produce()
    pairs = [(key, value.encode()) for key, value in headers.items()]
    found = extract(pairs, trusted_producers="any")
    assert found.request_id == "req-42"


def test_process_observes_one_message_and_resets_every_contextvar() -> None:
    headers = _produce()
    seen: dict[str, object] = {}

    def handler(message: str) -> str:
        seen["request_id"] = get_correlation_id()
        seen["remaining"] = remaining()
        seen["span"] = trace.get_current_span().get_span_context()
        return message.upper()

    with local_spans() as spans, capture_metrics() as metrics, capture_logs() as logs:
        consumer = Consumer(
            "orders", system="kafka", trusted_producers=PEERS, tracer_provider=spans.provider
        )
        result = consumer.process(handler, "hi", headers=headers, message_id="m-1")
    assert result.outcome == n.JOB_SUCCESS
    assert result.ack
    assert result.value == "HI"
    assert seen["request_id"] == "req-42"
    assert isinstance(seen["remaining"], float)
    assert 0 < seen["remaining"] <= 5.0
    [span] = spans.named("process orders")
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes is not None
    assert span.attributes[n.ATTR_MESSAGING_SYSTEM] == "kafka"
    assert span.attributes[n.ATTR_MESSAGING_DESTINATION] == "orders"
    assert span.attributes[n.ATTR_MESSAGING_MESSAGE_ID] == "m-1"
    assert span.attributes[n.ATTR_OUTCOME] == n.JOB_SUCCESS
    assert span.context is not None
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == headers["traceparent"].split("-")[1]
    labels = {
        n.LABEL_MESSAGING_SYSTEM: "kafka",
        n.LABEL_MESSAGING_DESTINATION: "orders",
        n.LABEL_OUTCOME: n.JOB_SUCCESS,
    }
    assert metrics.value(n.MESSAGING_PROCESS_DURATION + "_count", **labels) == 1
    [line] = logs.named(n.EVENT_MESSAGE)
    assert line[n.LOG_KEY_REQUEST_ID] == "req-42"
    assert line[n.LOG_KEY_TRACE_ID] == format(span.context.trace_id, "032x")
    assert line[n.LOG_KEY_MESSAGE_ID] == "m-1"
    assert line[n.LABEL_OUTCOME] == n.JOB_SUCCESS
    # Nothing leaks out of the message.
    assert get_correlation_id() is None
    assert current_deadline() is None
    assert not trace.get_current_span().get_span_context().is_valid


def test_without_headers_the_trace_id_serves_as_request_id() -> None:
    ids: list[str | None] = []
    with local_spans() as spans:
        consumer = Consumer("jobs", tracer_provider=spans.provider)
        consumer.process(lambda _: ids.append(get_correlation_id()), None)
    [span] = spans.spans
    assert span.context is not None
    assert ids == [format(span.context.trace_id, "032x")]


def test_failure_is_left_for_redelivery_until_max_deliveries_then_dead_lettered() -> None:
    letters: list[DeadLetter] = []

    def poison(message: str) -> None:
        raise OSError("broken")

    with capture_metrics() as metrics:
        consumer = Consumer("orders", max_deliveries=3, dead_letter=letters.append)
        outcomes = [
            consumer.process(poison, "m", message_id="p", delivery=d).outcome for d in (1, 2, 3)
        ]
    assert outcomes == [n.JOB_RETRY, n.JOB_RETRY, n.JOB_DEAD_LETTER]
    [letter] = letters
    assert letter.reason == n.DEAD_LETTER_MAX_DELIVERIES
    assert letter.delivery == 3
    assert isinstance(letter.error, OSError)
    assert letter.message == "m"
    labels = {n.LABEL_MESSAGING_DESTINATION: "orders"}
    assert metrics.value(n.MESSAGE_REDELIVERIES, **labels) == 2
    assert metrics.value(n.MESSAGES_DEAD_LETTERED, reason=n.DEAD_LETTER_MAX_DELIVERIES) == 1
    assert metrics.value(n.MESSAGING_PROCESS_DURATION + "_count", outcome=n.JOB_RETRY) == 2


def test_non_retryable_errors_are_dead_lettered_at_once() -> None:
    letters: list[DeadLetter] = []

    def bad(message: str) -> None:
        raise ValueError("malformed")

    consumer = Consumer("orders", non_retryable=ValueError, dead_letter=letters.append)
    result = consumer.process(bad, "m")
    assert result.outcome == n.JOB_DEAD_LETTER
    assert result.ack
    assert result.reason == n.DEAD_LETTER_NON_RETRYABLE
    assert [letter.reason for letter in letters] == [n.DEAD_LETTER_NON_RETRYABLE]


def test_a_failing_dead_letter_path_keeps_the_message() -> None:
    def broken_queue(letter: DeadLetter) -> None:
        raise ConnectionError("dead-letter queue unreachable")

    def bad(message: str) -> None:
        raise ValueError("malformed")

    consumer = Consumer("orders", non_retryable=ValueError, dead_letter=broken_queue)
    result = consumer.process(bad, "m")
    assert result.outcome == n.JOB_RETRY
    assert not result.ack


def test_in_process_retry_uses_the_public_retry_policy() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def flaky(message: str) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("flaky")
        return "ok"

    policy = retry(on=OSError, attempts=3, clock=clock, sleep=clock.sleep, budget=None)
    result = Consumer("orders", retry=policy, clock=clock).process(flaky, "m")
    assert result.outcome == n.JOB_SUCCESS
    assert len(calls) == 3
    assert len(clock.sleeps) == 2


def test_an_expired_deadline_is_not_run_and_goes_to_the_dead_letter_path() -> None:
    letters: list[DeadLetter] = []
    headers = {n.MESSAGE_DEADLINE_HEADER: "0.000"}
    ran: list[object] = []
    consumer = Consumer("orders", trusted_producers="any", dead_letter=letters.append)
    result = consumer.process(ran.append, "m", headers=headers)
    assert result.outcome == n.JOB_EXPIRED
    assert result.ack
    assert ran == []
    assert [letter.reason for letter in letters] == [n.JOB_EXPIRED]


def test_idempotent_consumer_runs_a_message_once() -> None:
    clock = FakeClock()
    store = InMemoryIdempotency(lease=30.0, clock=clock)
    effects: list[str] = []
    with capture_metrics() as metrics:
        consumer = Consumer("orders", idempotency=store, clock=clock)
        first = consumer.process(effects.append, "charge", message_id="m-1")
        again = consumer.process(effects.append, "charge", message_id="m-1", delivery=2)
    assert (first.outcome, again.outcome) == (n.JOB_SUCCESS, n.JOB_DUPLICATE)
    assert effects == ["charge"]
    assert metrics.value(n.IDEMPOTENCY_CHECKS, outcome=n.IDEMPOTENCY_FIRST) == 1
    assert metrics.value(n.IDEMPOTENCY_CHECKS, outcome=n.IDEMPOTENCY_DUPLICATE) == 1


def test_a_failed_run_releases_its_claim_so_the_redelivery_runs() -> None:
    store = InMemoryIdempotency()
    attempts: list[int] = []

    def once_flaky(message: str) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("first run fails")

    consumer = Consumer("orders", idempotency=store)
    assert consumer.process(once_flaky, "m", message_id="x").outcome == n.JOB_RETRY
    assert consumer.process(once_flaky, "m", message_id="x", delivery=2).outcome == "success"
    assert len(attempts) == 2


def test_cancellation_releases_the_claim_resets_the_context_and_propagates() -> None:
    store = InMemoryIdempotency()

    def interrupted(message: str) -> None:
        raise KeyboardInterrupt

    consumer = Consumer("orders", idempotency=store, trusted_producers="any")
    with pytest.raises(KeyboardInterrupt):
        consumer.process(
            interrupted, "m", message_id="k", headers={n.MESSAGE_REQUEST_ID_HEADER: "r-1"}
        )
    assert get_correlation_id() is None
    assert store.claim("buttress:idempotency:orders:k", "t") == "first"


def test_in_memory_claims_take_over_after_the_lease_and_expire_after_the_ttl() -> None:
    clock = FakeClock()
    store = InMemoryIdempotency(ttl=100.0, lease=10.0, clock=clock)
    assert store.claim("k", "a") == "first"
    assert store.claim("k", "b") == "in_progress"
    clock.advance(11.0)
    assert store.claim("k", "b") == "taken_over"
    store.release("k", "a")  # not a's claim any more: nothing happens
    assert store.claim("k", "c") == "in_progress"
    store.complete("k", "b")
    assert store.claim("k", "d") == "duplicate"
    clock.advance(101.0)
    assert store.claim("k", "e") == "first"


async def test_process_async_twin() -> None:
    store = InMemoryIdempotency()
    effects: list[str] = []

    async def handler(message: str) -> str:
        await asyncio.sleep(0)
        effects.append(message)
        assert get_correlation_id() == "r-9"
        return message

    consumer = Consumer("orders", idempotency=store, trusted_producers="any")
    headers = {n.MESSAGE_REQUEST_ID_HEADER: "r-9"}
    result = await consumer.process_async(handler, "a", headers=headers, message_id="1")
    again = await consumer.process_async(handler, "a", headers=headers, message_id="1")
    assert (result.outcome, again.outcome) == (n.JOB_SUCCESS, n.JOB_DUPLICATE)
    assert effects == ["a"]
    assert get_correlation_id() is None


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"max_deliveries": True}, "max_deliveries"),
        ({"dead_letter": "queue"}, "dead_letter"),
        ({"trusted_producers": "everyone"}, "trusted_peers"),
        ({"non_retryable": "ValueError"}, "non_retryable"),
    ],
)
def test_bad_configuration_names_the_value(options: dict[str, object], bad: str) -> None:
    with pytest.raises(ConfigurationError, match=bad):
        Consumer("orders", **options)  # type: ignore[arg-type]


def test_delivery_must_be_a_positive_int() -> None:
    with pytest.raises(ConfigurationError, match="delivery"):
        Consumer("orders").process(print, "m", delivery=0)


def test_long_message_ids_keep_their_identity() -> None:
    # Ids past 200 characters are hashed into the key: still one key per id.
    consumer = Consumer("orders", idempotency=InMemoryIdempotency())
    long_id = "x" * 10_000
    assert consumer.process(print, "m", message_id=long_id).outcome == n.JOB_SUCCESS
    assert consumer.process(print, "m", message_id=long_id).outcome == n.JOB_DUPLICATE
    other = consumer.process(print, "m", message_id=long_id + "y")
    assert other.outcome == n.JOB_SUCCESS


def test_an_observer_ends_once_and_maps_unknown_outcomes_to_retry() -> None:
    from buttress.jobs import MessageObserver

    with capture_metrics() as metrics:
        observer = MessageObserver("orders")
        observed = observer.begin({})
        observer.end(observed, "weird")
        observer.end(observed, n.JOB_SUCCESS)
    assert metrics.value(n.MESSAGING_PROCESS_DURATION + "_count", outcome=n.JOB_RETRY) == 1
    assert metrics.value(n.MESSAGING_PROCESS_DURATION + "_count", outcome=n.JOB_SUCCESS) == 0


class _BrokenStore:
    """A claim store that answers claims, then fails (Redis went away mid-message)."""

    def claim(self, key: str, token: str) -> str:
        return "first"

    def complete(self, key: str, token: str) -> None:
        raise ConnectionError("store down")

    def release(self, key: str, token: str) -> None:
        raise ConnectionError("store down")


class _DownStore(_BrokenStore):
    def claim(self, key: str, token: str) -> str:
        raise ConnectionError("store down")


def test_a_store_failing_after_the_claim_does_not_change_the_outcome() -> None:
    consumer = Consumer("orders", idempotency=_BrokenStore())  # type: ignore[arg-type]
    assert consumer.process(print, "m", message_id="1").outcome == n.JOB_SUCCESS

    def fail(message: str) -> None:
        raise OSError("handler failed")

    assert consumer.process(fail, "m", message_id="2").outcome == n.JOB_RETRY


def test_a_store_that_cannot_claim_leaves_the_message_for_later() -> None:
    ran: list[str] = []
    consumer = Consumer("orders", idempotency=_DownStore())  # type: ignore[arg-type]
    result = consumer.process(ran.append, "m", message_id="1")
    assert result.outcome == n.JOB_RETRY
    assert isinstance(result.error, ConnectionError)
    assert ran == []


async def test_a_cancelled_async_handler_releases_its_claim_and_propagates() -> None:
    store = InMemoryIdempotency()

    async def hangs(message: str) -> None:
        await asyncio.sleep(60)

    consumer = Consumer("orders", idempotency=store)
    task = asyncio.ensure_future(consumer.process_async(hangs, "m", message_id="k"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The claim went back: a redelivery runs the message instead of waiting out a lease.
    assert store.claim("buttress:idempotency:orders:k", "t") == "first"


def test_an_async_handler_given_to_the_sync_process_is_named_not_counted_a_success() -> None:
    store = InMemoryIdempotency()

    async def handler(message: str) -> str:
        return message

    result = Consumer("orders", idempotency=store).process(handler, "m", message_id="k")
    assert result.outcome == n.JOB_RETRY
    assert isinstance(result.error, ConfigurationError)
    assert "handler returned an awaitable: use process_async" in str(result.error)
    assert store.claim("buttress:idempotency:orders:k", "t") == "first"  # released
