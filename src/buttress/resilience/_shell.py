"""The one shell that turns a strategy into sync and async decorators and callers.

A strategy implements two short twins, :meth:`Strategy.run_sync` and
:meth:`Strategy.run_async`; this module is the only place that asks whether a callable
is a coroutine function. Wrappers keep the decorated signature (``ParamSpec``) and hold
no per-call state: everything a call needs lives in its own frame.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from .._errors import ConfigurationError

__all__ = ["Strategy", "is_async_callable", "refuse_generators"]

P = ParamSpec("P")
R = TypeVar("R")


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns an awaitable: coroutine functions, partials of them,
    and objects whose ``__call__`` is one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def refuse_generators(fn: object, strategy: object) -> None:
    """Refuse a generator or async-generator function, at decoration time.

    Calling one only builds the generator: its body runs later, one item at a time,
    under the caller's control. A strategy wrapping the call would protect nothing (a
    bulkhead slot given back before the first item, a breaker counting a "success" that
    has not happened, a retry that cannot take back items already yielded), so it is
    refused rather than silently left unprotected. Protect the work each item does, or
    collect the items in a plain function and decorate that.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        name = getattr(fn, "__qualname__", repr(fn))
        raise ConfigurationError(
            f"{type(strategy).__name__} cannot protect {name}: it is {kind} function, whose "
            "body runs after the call returns; decorate a function that does the work "
            "(or collects the items) instead"
        )


class Strategy(abc.ABC):
    """Base of every resilience strategy: ``strategy(fn)`` decorates, ``strategy.call`` calls.

    The strategy API is the pair :meth:`run_sync` and :meth:`run_async`: a subclass
    implements both (two short twins), and anything that composes strategies (``Policy``,
    the httpx transports, your own code) calls them with ``fn``, its positional
    arguments as a tuple and its keyword arguments as a dict. ``run_async`` receives an
    ``fn`` whose call returns an awaitable. See docs/policy.md.
    """

    __slots__ = ()

    @abc.abstractmethod
    def run_sync(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run ``fn(*args, **kwargs)`` under this strategy and return its result."""

    @abc.abstractmethod
    async def run_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        """Await ``fn(*args, **kwargs)`` under this strategy."""

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn``, a plain or a coroutine function; its signature is kept.

        Above ``@staticmethod`` or ``@classmethod`` the function inside is decorated and
        re-wrapped, so an async one stays protected. Generator functions are refused.
        """
        if isinstance(fn, staticmethod | classmethod):
            inner = Strategy.__call__(self, fn.__func__)
            return cast("Callable[P, R]", type(fn)(inner))
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} decorates callables, got {fn!r}")
        refuse_generators(fn, self)
        if is_async_callable(fn):
            call_async = self.run_async
            afn = cast("Callable[..., Awaitable[Any]]", fn)

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(afn, args, kwargs)

            wrapper: Callable[..., Any] = async_wrapper
        else:
            call_sync = self.run_sync

            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return call_sync(fn, args, kwargs)

            wrapper = sync_wrapper
        functools.update_wrapper(wrapper, fn)
        if inspect.isfunction(fn) and inspect.isfunction(wrapper):
            # Tools that read defaults off the function (not through ``__wrapped__``) see
            # the decorated function's, as with tenacity's wrappers. The wrapper takes only
            # ``*args, **kwargs``, so these never change how a call binds.
            wrapper.__defaults__ = fn.__defaults__
            wrapper.__kwdefaults__ = fn.__kwdefaults__
        return cast("Callable[P, R]", wrapper)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` under this strategy without decorating it.

        For a coroutine function this returns the coroutine to await.
        """
        refuse_generators(fn, self)
        if is_async_callable(fn):
            afn = cast("Callable[..., Awaitable[Any]]", fn)
            return cast("R", self.run_async(afn, args, kwargs))
        return self.run_sync(fn, args, kwargs)
