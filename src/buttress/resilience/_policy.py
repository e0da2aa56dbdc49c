"""Policy: strategies composed outermost first, ``Policy(a, b, c)`` being ``a(b(c(fn)))``.

Any :class:`Strategy` composes: a policy relies only on ``__call__``, ``run_sync`` and
``run_async``. As a decorator it stacks the strategies once, at decoration time; as a
caller (``policy.call``) it walks the chain with one bound method per layer, so no
closure is built per call. Unnamed members that accept a default name (retry, timeout,
fallback) take the policy's name, as copies that share their state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._args import check_optional_name
from .._errors import ConfigurationError
from ._shell import Strategy

__all__ = ["Policy"]

P = ParamSpec("P")
R = TypeVar("R")


class Policy(Strategy):
    """Compose strategies: ``Policy(retry(...), timeout(2), name="payments")``.

    The first strategy is the outermost: above, the retry wraps the timeout, so each
    attempt gets 2 s. Use it as a decorator on sync and async functions, or call through
    it with ``policy.call(fn, *args, **kwargs)``. ``name`` labels the members' events and
    metrics. See docs/policy.md.
    """

    __slots__ = ("_explicit", "_last", "_name", "_next_async", "_next_sync", "_strategies")

    def __init__(self, *strategies: Strategy, name: str | None = None) -> None:
        if not strategies:
            raise ConfigurationError("Policy needs at least one strategy")
        for strategy in strategies:
            if not isinstance(strategy, Strategy):
                raise ConfigurationError(f"Policy composes strategies, got {strategy!r}")
        self._name = check_optional_name(name)
        self._explicit = name is not None
        self._set(strategies)

    def _set(self, strategies: tuple[Strategy, ...]) -> None:
        if self._name is not None:
            strategies = tuple(_named(s, self._name) for s in strategies)
        self._strategies = strategies
        self._last = len(strategies) - 1
        # Bound once: the chain passes these down instead of building closures per call.
        self._next_sync = self._step_sync
        self._next_async = self._step_async

    @property
    def name(self) -> str | None:
        """The name that labels the members' metrics (``None`` when unnamed)."""
        return self._name

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        """The members, outermost first."""
        return self._strategies

    def _with_default_name(self, name: str) -> Policy:
        """A nested unnamed policy takes the enclosing policy's name."""
        if self._explicit:
            return self
        return Policy(*self._strategies, name=name)

    def __repr__(self) -> str:
        chain = ", ".join(repr(s) for s in self._strategies)
        name = f", name={self._name!r}" if self._name is not None else ""
        return f"Policy({chain}{name})"

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if isinstance(fn, staticmethod | classmethod):
            return cast("Callable[P, R]", type(fn)(self(fn.__func__)))
        if not callable(fn):
            raise TypeError(f"Policy decorates callables, got {fn!r}")
        wrapped = fn
        for strategy in reversed(self._strategies):
            wrapped = strategy(wrapped)
        return wrapped

    def _step_sync(self, index: int, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        strategy = self._strategies[index]
        if index == self._last:
            return strategy.run_sync(fn, args, kwargs)
        inner: R = strategy.run_sync(self._next_sync, (index + 1, fn, args, kwargs), {})
        return inner

    async def _step_async(
        self, index: int, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any
    ) -> R:
        strategy = self._strategies[index]
        if index == self._last:
            return await strategy.run_async(fn, args, kwargs)
        inner: R = await strategy.run_async(self._next_async, (index + 1, fn, args, kwargs), {})
        return inner

    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        return self._step_sync(0, fn, args, kwargs)

    async def run_async(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        return await self._step_async(0, fn, args, kwargs)


def _named(strategy: Strategy, name: str) -> Strategy:
    # Strategies with a required name (breakers, bulkheads, ...) have no such method and
    # are left as they are.
    rename: Callable[[str], Strategy] | None = getattr(strategy, "_with_default_name", None)
    return rename(name) if rename is not None else strategy
