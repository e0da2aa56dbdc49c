from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from buttress.resilience._shell import is_async_callable
from buttress.strategies import Strategy

R = TypeVar("R")


class Recording(Strategy):
    """A strategy that records which twin ran and what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        self.calls.append(("sync", args, kwargs))
        return fn(*args, **kwargs)

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        self.calls.append(("async", args, kwargs))
        return await fn(*args, **kwargs)


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


async def add_async(a: int, b: int = 1) -> int:
    return a + b


class AsyncCallable:
    async def __call__(self, a: int) -> int:
        return a * 2


def test_decorates_sync_functions_and_keeps_metadata() -> None:
    strategy = Recording()
    wrapped = strategy(add)
    assert wrapped(2, b=3) == 5
    assert strategy.calls == [("sync", (2,), {"b": 3})]
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == "Add two numbers."
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]


async def test_decorates_coroutine_functions_as_coroutine_functions() -> None:
    strategy = Recording()
    wrapped = strategy(add_async)
    assert inspect.iscoroutinefunction(wrapped)
    assert await wrapped(2, b=5) == 7
    assert strategy.calls == [("async", (2,), {"b": 5})]


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (add, False),
        (add_async, True),
        (functools.partial(add_async, 1), True),
        (functools.partial(functools.partial(add_async, 1), b=2), True),
        (AsyncCallable(), True),
        (lambda: None, False),
        (print, False),
    ],
)
def test_is_async_callable(fn: object, expected: bool) -> None:
    assert is_async_callable(fn) is expected


async def test_call_runs_without_decorating() -> None:
    strategy = Recording()
    assert strategy.call(add, 1, b=1) == 2
    assert await strategy.call(add_async, 1) == 2
    assert await strategy.call(AsyncCallable(), 4) == 8
    assert [c[0] for c in strategy.calls] == ["sync", "async", "async"]


def test_decorating_a_non_callable_names_it() -> None:
    with pytest.raises(TypeError, match="42"):
        Recording()(42)  # type: ignore[arg-type]


def test_exceptions_pass_through_unchanged() -> None:
    error = ValueError("boom")

    @Recording()
    def fail() -> None:
        raise error

    with pytest.raises(ValueError) as info:
        fail()
    assert info.value is error


def test_wrappers_hold_no_per_call_state() -> None:
    strategy = Recording()
    wrapped = strategy(add_async)

    async def main() -> list[int]:
        return await asyncio.gather(*(wrapped(i, b=i) for i in range(50)))

    assert asyncio.run(main()) == [2 * i for i in range(50)]
    assert len(strategy.calls) == 50
