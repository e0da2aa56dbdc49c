"""The Celery receivers in one process (tasks run with ``apply``): no broker, no worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from buttress import get_correlation_id
from buttress import names as n
from buttress.jobs import DeadLetter, instrument_celery
from buttress.testing import capture_metrics

from ._spans import LocalSpans


def _app(name: str) -> tuple[Any, Any, Any]:
    app = Celery(name, broker="memory://")
    seen: list[str | None] = []

    @app.task(name=f"{name}.work")  # type: ignore[untyped-decorator]
    def work() -> None:
        seen.append(get_correlation_id())

    @app.task(name=f"{name}.fail", max_retries=0)  # type: ignore[untyped-decorator]
    def fail() -> None:
        raise ValueError("bad input")

    return app, work, fail


@pytest.fixture
def letters() -> list[DeadLetter]:
    return []


@pytest.fixture
def instrumented(letters: list[DeadLetter], spans: LocalSpans) -> Iterator[tuple[Any, Any, Any]]:
    app, work, fail = _app("ours")
    instrumentation = instrument_celery(
        app, trusted_producers="any", dead_letter=letters.append, tracer_provider=spans.provider
    )
    try:
        yield app, work, fail
    finally:
        instrumentation.uninstrument()


def test_a_run_is_observed_with_the_producers_request_id(
    instrumented: tuple[Any, Any, Any], spans: LocalSpans
) -> None:
    _, work, _ = instrumented
    with capture_metrics() as metrics:
        work.apply(headers={n.MESSAGE_REQUEST_ID_HEADER: "from-producer"})
    [span] = spans.named("process ours.work")
    assert span.attributes is not None
    assert span.attributes[n.ATTR_OUTCOME] == n.JOB_SUCCESS
    assert span.attributes[n.ATTR_REQUEST_ID] == "from-producer"
    labels = {n.LABEL_MESSAGING_SYSTEM: "celery", n.LABEL_MESSAGING_DESTINATION: "ours.work"}
    assert metrics.value(n.MESSAGING_PROCESS_DURATION + "_count", **labels) == 1
    assert get_correlation_id() is None


def test_a_final_failure_is_dead_lettered(
    instrumented: tuple[Any, Any, Any], letters: list[DeadLetter]
) -> None:
    _, _, fail = instrumented
    with capture_metrics() as metrics:
        fail.apply()
    [letter] = letters
    assert letter.destination == "ours.fail"
    assert letter.reason == n.DEAD_LETTER_NON_RETRYABLE
    assert isinstance(letter.error, ValueError)
    assert metrics.value(n.MESSAGES_DEAD_LETTERED, reason=n.DEAD_LETTER_NON_RETRYABLE) == 1


def test_tasks_of_another_app_and_after_uninstrument_are_left_alone(spans: LocalSpans) -> None:
    ours, work, _ = _app("mine")
    _, other_work, _ = _app("theirs")
    instrumentation = instrument_celery(ours, tracer_provider=spans.provider)
    other_work.apply()
    work.apply()
    instrumentation.uninstrument()
    work.apply()
    assert spans.names() == ["process mine.work"]


def test_only_producers_presenting_the_secret_are_believed(spans: LocalSpans) -> None:
    from buttress.middleware import TrustedPeers

    peers = TrustedPeers(header="x-producer-secret", secret="a-secret-of-16-chars")
    app, work, _ = _app("guarded")
    instrumentation = instrument_celery(
        app, trusted_producers=peers, present=peers, tracer_provider=spans.provider
    )
    try:
        work.apply(headers={n.MESSAGE_REQUEST_ID_HEADER: "claimed"})
        work.apply(
            headers={
                n.MESSAGE_REQUEST_ID_HEADER: "proven",
                "x-producer-secret": "a-secret-of-16-chars",
            }
        )
        first, second = spans.named("process guarded.work")
        assert first.attributes is not None
        assert second.attributes is not None
        assert first.attributes[n.ATTR_PRODUCER_TRUSTED] is False
        assert first.attributes[n.ATTR_REQUEST_ID] != "claimed"
        assert second.attributes[n.ATTR_PRODUCER_TRUSTED] is True
        assert second.attributes[n.ATTR_REQUEST_ID] == "proven"
    finally:
        instrumentation.uninstrument()
