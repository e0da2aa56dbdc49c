from __future__ import annotations

import dataclasses
import logging
import threading

import pytest

from buttress.events import (
    BreakerTransition,
    Event,
    Listener,
    Registry,
    RetryFinished,
    RetryScheduled,
    default_registry,
)

SCHEDULED = RetryScheduled(name="db", attempt=1, wait=0.5, error_type="OSError")


def test_events_are_frozen_and_slotted() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCHEDULED.wait = 1.0  # type: ignore[misc]
    assert not hasattr(SCHEDULED, "__dict__")


def test_events_compare_by_value() -> None:
    assert SCHEDULED == RetryScheduled(name="db", attempt=1, wait=0.5, error_type="OSError")


def test_emit_calls_listeners_in_order() -> None:
    registry = Registry()
    seen: list[tuple[str, Event]] = []
    registry.add(lambda e: seen.append(("a", e)))
    registry.add(lambda e: seen.append(("b", e)))
    registry.emit(SCHEDULED)
    assert seen == [("a", SCHEDULED), ("b", SCHEDULED)]


def test_active_follows_listeners() -> None:
    registry = Registry()
    states = [registry.active]
    listener: Listener = lambda e: None  # noqa: E731
    registry.add(listener)
    states.append(registry.active)
    registry.remove(listener)
    states.append(registry.active)
    registry.remove(listener)  # removing twice is harmless
    assert states == [False, True, False]
    assert registry.listeners == ()


def test_adding_the_same_listener_twice_keeps_one() -> None:
    registry = Registry()
    calls: list[Event] = []
    listener: Listener = calls.append
    registry.add(listener)
    registry.add(listener)
    registry.emit(SCHEDULED)
    assert calls == [SCHEDULED]


def test_failing_listener_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    after: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    registry.add(broken)
    registry.add(after.append)
    with caplog.at_level(logging.ERROR, logger="buttress"):
        registry.emit(SCHEDULED)
    assert after == [SCHEDULED]
    assert "listener bug" in caplog.text


def test_defaults_load_lazily_once() -> None:
    loads: list[int] = []
    heard: list[Event] = []

    def defaults() -> list[Listener]:
        loads.append(1)
        return [heard.append]

    registry = Registry(defaults)
    assert registry.active is True  # may have listeners until the defaults are known
    assert loads == []
    registry.emit(SCHEDULED)
    registry.emit(SCHEDULED)
    assert loads == [1]
    assert heard == [SCHEDULED, SCHEDULED]


def test_defaults_that_bring_nothing_leave_the_registry_inactive() -> None:
    registry = Registry(list)
    registry.emit(SCHEDULED)
    assert registry.active is False


def test_clear_drops_defaults_and_reset_reloads_them() -> None:
    heard: list[Event] = []
    registry = Registry(lambda: [heard.append])
    registry.clear()
    registry.emit(SCHEDULED)
    assert heard == []
    registry.reset()
    registry.emit(SCHEDULED)
    assert heard == [SCHEDULED]


def test_capture_collects_only_inside_the_block() -> None:
    registry = Registry()
    registry.emit(SCHEDULED)
    with registry.capture() as events:
        registry.emit(SCHEDULED)
    registry.emit(SCHEDULED)
    assert events == [SCHEDULED]
    assert registry.listeners == ()


def test_default_registry_capture() -> None:
    event = BreakerTransition(name="b", old="closed", new="open", reason="failure_rate")
    with default_registry.capture() as events:
        default_registry.emit(event)
    assert events == [event]


def test_concurrent_add_and_emit_lose_no_listener() -> None:
    registry = Registry()
    counts = [0] * 8
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        def listener(event: Event) -> None:
            counts[i] += 1

        barrier.wait()
        registry.add(listener)
        for _ in range(200):
            registry.emit(RetryFinished(name="x", attempts=1, outcome="success", error_type=""))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry.listeners) == 8
    assert all(c >= 200 for c in counts)
