from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import buttress
from buttress import ConfigurationError, FaultInjection, Policy
from buttress.events import FallbackUsed, FaultInjected
from buttress.testing import FakeClock, capture_events


class Draws:
    """A scripted ``random()``: returns the given draws in order, then repeats the last."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class Boom(Exception):
    pass


def test_disabled_by_default_and_never_draws() -> None:
    draws = Draws(0.0)
    faults = FaultInjection("pay", rate=1.0, exception=Boom, random=draws)

    @faults
    def work() -> str:
        return "ok"

    assert not faults.enabled
    assert [work() for _ in range(5)] == ["ok"] * 5
    assert draws.calls == 0


def test_enabled_injects_exceptions_at_the_rate() -> None:
    faults = FaultInjection(
        "pay", rate=0.5, exception=Boom, enabled=True, random=Draws(0.2, 0.7, 0.49, 0.5)
    )
    calls = 0

    def work() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    outcomes = []
    with capture_events() as events:
        for _ in range(4):
            try:
                outcomes.append(faults.call(work))
            except Boom:
                outcomes.append("boom")
    assert outcomes == ["boom", "ok", "boom", "ok"]
    assert calls == 2  # a faulted call never reaches the function
    assert events == [FaultInjected("pay", "exception")] * 2


def test_enable_disable_and_set_rate_at_run_time() -> None:
    faults = FaultInjection("pay", rate=0.0, result="canned", random=Draws(0.3))
    faults.enable()
    assert faults.enabled
    assert faults.call(lambda: "real") == "real"  # rate 0: nothing injected
    faults.set_rate(0.5)
    assert faults.rate == 0.5
    assert faults.call(lambda: "real") == "canned"
    faults.disable()
    assert faults.call(lambda: "real") == "real"
    faults.enable(rate=0.25)
    assert faults.rate == 0.25
    assert faults.call(lambda: "real") == "real"  # 0.3 >= 0.25
    faults.enable(rate=1)
    assert faults.call(lambda: "real") == "canned"


def test_result_answers_without_calling_and_may_be_none() -> None:
    faults = FaultInjection("pay", rate=1.0, result=None, enabled=True)
    seen: list[int] = []
    with capture_events() as events:
        assert faults.call(seen.append, 1) is None
    assert seen == []
    assert events == [FaultInjected("pay", "result")]


def test_latency_delays_then_calls_through() -> None:
    clock = FakeClock(0.0)
    faults = FaultInjection(
        "pay", rate=1.0, latency=timedelta(milliseconds=250), enabled=True, sleep=clock.sleep
    )
    with capture_events() as events:
        assert faults.call(lambda: clock.now) == 0.25
    assert clock.sleeps == [0.25]
    assert events == [FaultInjected("pay", "latency")]


def test_latency_and_exception_together() -> None:
    clock = FakeClock(0.0)
    faults = FaultInjection(
        "pay", rate=1.0, latency=2, exception=Boom("down"), enabled=True, sleep=clock.sleep
    )
    with capture_events() as events, pytest.raises(Boom, match="down"):
        faults.call(lambda: "ok")
    assert clock.sleeps == [2.0]
    assert events == [FaultInjected("pay", "latency"), FaultInjected("pay", "exception")]


def test_exception_instances_are_copied_per_raise() -> None:
    original = Boom("down")
    faults = FaultInjection("pay", rate=1.0, exception=original, enabled=True)
    raised = []
    for _ in range(2):
        with pytest.raises(Boom) as info:
            faults.call(lambda: None)
        raised.append(info.value)
    assert raised[0] is not raised[1]
    assert raised[0] is not original
    assert raised[0].args == ("down",)
    assert original.__traceback__ is None


def test_exception_factories_and_types() -> None:
    by_type = FaultInjection("a", rate=1.0, exception=ConnectionError, enabled=True)
    with pytest.raises(ConnectionError, match="fault injected on purpose"):
        by_type.call(lambda: None)
    by_factory = FaultInjection("b", rate=1.0, exception=lambda: TimeoutError("slow"), enabled=True)
    with pytest.raises(TimeoutError, match="slow"):
        by_factory.call(lambda: None)


async def test_async_twin_injects_all_kinds() -> None:
    clock = FakeClock(0.0)

    async def work() -> str:
        return "real"

    slow = FaultInjection(
        "pay", rate=1.0, latency=1.5, enabled=True, sleep=clock.async_sleep, random=Draws(0.0)
    )
    failing = FaultInjection("pay", rate=1.0, exception=Boom, enabled=True)
    canned = FaultInjection("pay", rate=1.0, result="canned", enabled=True)
    with capture_events() as events:
        assert await slow(work)() == "real"
        with pytest.raises(Boom):
            await failing.call(work)
        assert await canned.call(work) == "canned"
    assert clock.sleeps == [1.5]
    assert [e.kind for e in events if isinstance(e, FaultInjected)] == [
        "latency",
        "exception",
        "result",
    ]


async def test_async_latency_with_a_plain_sleep_and_the_real_one() -> None:
    clock = FakeClock(0.0)

    async def work() -> float:
        return clock.now

    faults = FaultInjection("pay", rate=1.0, latency=3, enabled=True, sleep=clock.sleep)
    assert await faults.call(work) == 3.0
    # The default async sleep is asyncio.sleep: a tiny real latency still calls through.
    real = FaultInjection("pay", rate=1.0, latency=0.001, enabled=True)
    assert await real.call(work) == 3.0


def test_composes_in_a_policy_so_fallbacks_can_be_proven() -> None:
    faults = FaultInjection("pay", rate=1.0, exception=ConnectionError, enabled=True)
    policy = Policy(buttress.fallback("cached", on=ConnectionError), faults, name="pay")

    @policy
    def fetch() -> str:
        return "fresh"

    with capture_events() as events:
        assert fetch() == "cached"
        faults.disable()
        assert fetch() == "fresh"
    assert events == [FaultInjected("pay", "exception"), FallbackUsed("pay", "ConnectionError")]


def test_switching_from_another_thread_is_seen_by_the_next_call() -> None:
    faults = FaultInjection("pay", rate=1.0, result="canned")
    barrier = threading.Barrier(2)
    answers: list[object] = []

    def caller() -> None:
        answers.append(faults.call(lambda: "real"))
        barrier.wait()
        barrier.wait()
        answers.append(faults.call(lambda: "real"))

    thread = threading.Thread(target=caller)
    thread.start()
    barrier.wait()
    faults.enable()
    barrier.wait()
    thread.join()
    assert answers == ["real", "canned"]


def test_many_threads_switching_never_break_calls() -> None:
    faults = FaultInjection("pay", rate=0.5, result="canned")
    stop = threading.Event()
    errors: list[BaseException] = []
    answers: list[object] = []

    def toggler() -> None:
        for i in range(200):
            if i % 2:
                faults.enable(rate=(i % 10) / 10)
            else:
                faults.disable()
        stop.set()

    def caller() -> None:
        try:
            while not stop.is_set():
                answers.append(faults.call(lambda: "real"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    toggler()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(answers) <= {"real", "canned"}


def test_repr_shows_the_kinds_and_the_switch() -> None:
    faults = FaultInjection("pay", rate=0.2, exception=Boom, latency=1)
    assert repr(faults) == "FaultInjection('pay', rate=0.2, kinds=exception+latency, disabled)"
    faults.enable()
    assert repr(faults).endswith("enabled)")
    assert faults.name == "pay"
    assert faults.latency == 1.0
    assert FaultInjection("pay", result=1).latency is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rate": 1.5, "result": 1}, "1.5"),
        ({"rate": -0.1, "result": 1}, "-0.1"),
        ({"rate": float("nan"), "result": 1}, "nan"),
        ({"rate": True, "result": 1}, "True"),
        ({"latency": -1}, "-1"),
        ({"latency": 0}, "0"),
        ({"exception": "boom"}, "boom"),
        ({"exception": True}, "True"),
        ({"exception": Boom, "result": 1}, "not both"),
        ({}, "injects nothing"),
        ({"result": 1, "enabled": "yes"}, "yes"),
    ],
)
def test_bad_arguments_name_the_bad_value(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        FaultInjection("pay", **kwargs)  # type: ignore[arg-type]


def test_bad_names_and_runtime_rates_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="''"):
        FaultInjection("", result=1)
    faults = FaultInjection("pay", result=1)
    with pytest.raises(ConfigurationError, match="2"):
        faults.set_rate(2)
    with pytest.raises(ConfigurationError, match="-1"):
        faults.enable(rate=-1)
    assert not faults.enabled
    assert faults.rate == 0.1
