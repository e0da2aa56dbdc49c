"""Fallback: answer with a value (or a callable's answer) when the call fails on ``on``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._args import ExceptionFilter, Named, check_optional_name, exception_matcher
from .._events import FallbackUsed, Registry, default_registry
from ._shell import Strategy

__all__ = ["Fallback", "fallback"]

P = ParamSpec("P")
R = TypeVar("R")


class Fallback(Named, Strategy):
    """What :func:`fallback` returns. See :func:`fallback`."""

    __slots__ = ("_answer", "_call_answer", "_explicit", "_name", "_on", "_registry")

    def __init__(
        self,
        answer: object,
        *,
        on: Callable[[BaseException], bool],
        name: str | None,
        events: Registry,
    ) -> None:
        self._answer = answer
        self._call_answer = callable(answer)
        self._on = on
        self._name = name or "fallback"
        self._explicit = name is not None
        self._registry = events

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return Strategy.__call__(self._decorate_named(fn), fn)

    def __repr__(self) -> str:
        return f"fallback({self._answer!r}, name={self._name!r})"

    def _used(self, error: BaseException) -> object:
        if self._registry.active:
            self._registry.emit(FallbackUsed(self._name, type(error).__name__))
        if self._call_answer:
            return cast("Callable[[BaseException], object]", self._answer)(error)
        return self._answer

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not self._on(exc):
                raise
            # Answered inside the handler: if the fallback itself fails, its error
            # carries the original one as __context__.
            return cast("R", self._used(exc))

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not self._on(exc):
                raise
            answer = self._used(exc)
            if inspect.isawaitable(answer):
                answer = await answer
            return cast("R", answer)


def fallback(
    value_or_callable: object,
    /,
    *,
    on: ExceptionFilter,
    name: str | None = None,
    events: Registry | None = None,
) -> Fallback:
    """Answer with ``value_or_callable`` when the call raises an exception matching ``on``.

    A callable is called with the exception and its return value is the answer (awaited
    if it is awaitable, in async calls). ``on`` takes exception types, a tuple of them or
    a predicate; ``on=buttress.Rejected`` degrades gracefully whenever buttress refused a
    call (open breaker, full bulkhead, rate limit, timeout). To answer with a callable
    itself, wrap it: ``fallback(lambda _: handler, on=...)``. See docs/fallback.md.
    """
    return Fallback(
        value_or_callable,
        on=exception_matcher(on, "on"),
        name=check_optional_name(name),
        events=events if events is not None else default_registry,
    )
