from __future__ import annotations

import pytest

import buttress
from buttress import BulkheadFull, CircuitOpen, Rejected, TimedOut
from buttress.events import FallbackUsed
from buttress.testing import capture_events

from ._fakes import Flaky


def test_a_value_answers_for_a_failed_call() -> None:
    with capture_events() as events:
        assert buttress.fallback([], on=KeyError, name="fb").call(Flaky(KeyError())) == []
    assert events == [FallbackUsed("fb", "KeyError")]


def test_success_passes_through_silently() -> None:
    with capture_events() as events:
        assert buttress.fallback(0, on=KeyError).call(Flaky(value=5)) == 5
    assert events == []


def test_a_callable_gets_the_exception() -> None:
    strategy = buttress.fallback(lambda e: f"cached ({e.args[0]})", on=ValueError)
    assert strategy.call(Flaky(ValueError("down"))) == "cached (down)"


def test_other_exceptions_pass_unchanged() -> None:
    error = KeyError("k")
    with pytest.raises(KeyError) as info:
        buttress.fallback(0, on=ValueError).call(Flaky(error))
    assert info.value is error


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpen("open", name="b", retry_after=1.0),
        BulkheadFull("full", name="h"),
        TimedOut("late", name="t", timeout=1.0),
    ],
)
def test_fallback_on_rejected_degrades_when_buttress_refused(error: Rejected) -> None:
    assert buttress.fallback("degraded", on=Rejected).call(Flaky(error)) == "degraded"


def test_a_failing_fallback_keeps_the_original_error_as_context() -> None:
    original = ValueError("original")

    def broken(e: BaseException) -> None:
        raise RuntimeError("fallback broke")

    with pytest.raises(RuntimeError) as info:
        buttress.fallback(broken, on=ValueError).call(Flaky(original))
    assert info.value.__context__ is original


def test_a_predicate_chooses() -> None:
    strategy = buttress.fallback(None, on=lambda e: "soft" in str(e))
    assert strategy.call(Flaky(ValueError("soft"))) is None
    with pytest.raises(ValueError):
        strategy.call(Flaky(ValueError("hard")))


async def test_async_fallbacks_may_be_coroutines() -> None:
    async def cached(e: BaseException) -> str:
        return "from cache"

    @buttress.fallback(cached, on=ConnectionError)
    async def fetch() -> str:
        raise ConnectionError

    with capture_events() as events:
        assert await fetch() == "from cache"
    name = f"{__name__}.test_async_fallbacks_may_be_coroutines.<locals>.fetch"
    assert events == [FallbackUsed(name, "ConnectionError")]
    assert await buttress.fallback(3, on=KeyError).call(Flaky(KeyError()).run_async) == 3
    with pytest.raises(ValueError):
        await buttress.fallback(3, on=KeyError).call(Flaky(ValueError()).run_async)


def test_bad_on_is_named() -> None:
    with pytest.raises(buttress.ConfigurationError, match="'oops'"):
        buttress.fallback(0, on="oops")  # type: ignore[arg-type]


def test_repr() -> None:
    assert repr(buttress.fallback(0, on=KeyError, name="x")) == "fallback(0, name='x')"
