"""The strategy shell alone: what one layer of decoration costs over a bare call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from benchmarks._harness import compare_async, compare_sync, report
from buttress.strategies import Strategy

R = TypeVar("R")


class PassThrough(Strategy):
    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        return fn(*args, **kwargs)

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        return await fn(*args, **kwargs)


def bare(x: int) -> int:
    return x


async def abare(x: int) -> int:
    return x


def main(quick: bool = False) -> str:
    number = 2_000 if quick else 50_000
    wrapped, awrapped = PassThrough()(bare), PassThrough()(abare)
    sync = compare_sync({"bare": lambda: bare(1), "shell": lambda: wrapped(1)}, number=number)

    async def call_abare() -> int:
        return await abare(1)

    async def call_awrapped() -> int:
        return await awrapped(1)

    asyn = compare_async({"bare": call_abare, "shell": call_awrapped}, number=number)
    return (
        report("shell, sync", sync, baseline="bare")
        + "\n"
        + report("shell, async", asyn, baseline="bare")
    )
