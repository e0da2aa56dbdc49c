"""Integrations: existing pybreaker breakers and tenacity retries, observed like ours.

They turn the other library's callbacks into buttress events on a registry (the default
one unless given another), so the same metrics, span events and log events appear and
the same dashboards show them. Nothing here imports pybreaker or tenacity: the callbacks
are duck-typed, and wiring is explicit (nothing happens at import time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from . import _events as ev

if TYPE_CHECKING:
    from collections.abc import Callable

try:  # a subclass, so that type checkers accept it in CircuitBreaker(listeners=[...])
    from pybreaker import CircuitBreakerListener as _PybreakerBase
except ImportError:  # pybreaker is optional: the listener is duck-typed anyway
    _PybreakerBase = object  # type: ignore[assignment, misc]

__all__ = ["PybreakerListener", "TenacityHooks"]

# pybreaker's state names -> ours.
_STATES: dict[str, ev.BreakerState] = {"closed": "closed", "open": "open", "half-open": "half_open"}


class PybreakerListener(_PybreakerBase):
    """A pybreaker listener: transitions and counted calls become buttress events.

    >>> breaker = pybreaker.CircuitBreaker(fail_max=5, name="payments",
    ...                                    listeners=[PybreakerListener()])  # doctest: +SKIP

    The policy name is ``name``, else the breaker's own name, else ``"pybreaker"``.
    pybreaker refuses calls before listeners hear of them, so its rejections cannot be
    counted here (``buttress_circuit_breaker_rejections_total`` stays at zero for it).
    """

    __slots__ = ("_name", "_registry")

    def __init__(
        self, name: str | None = None, *, events: ev.Registry = ev.default_registry
    ) -> None:
        self._name = name
        self._registry = events

    def _policy(self, cb: Any) -> str:
        return self._name or getattr(cb, "name", None) or "pybreaker"

    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing to record before a call."""

    def success(self, cb: Any) -> None:
        """A call succeeded (pybreaker also reports excluded exceptions as successes)."""
        if self._registry.active:
            self._registry.emit(ev.BreakerCallRecorded(self._policy(cb), "success", slow=False))

    def failure(self, cb: Any, exc: BaseException) -> None:
        """A call failed with an exception the breaker counts."""
        if self._registry.active:
            self._registry.emit(ev.BreakerCallRecorded(self._policy(cb), "failure", slow=False))

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        """The breaker changed state (``old_state`` is ``None`` for the first state)."""
        if old_state is None or not self._registry.active:
            return
        old, new = _STATES.get(old_state.name), _STATES.get(new_state.name)
        if old is not None and new is not None and old != new:
            self._registry.emit(ev.BreakerTransition(self._policy(cb), old, new, "pybreaker"))


def _error_type(retry_state: Any) -> str:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return "result"
    return type(outcome.exception()).__name__


class TenacityHooks:
    """Callbacks for a tenacity retry that emit buttress retry events under ``name``.

    >>> hooks = TenacityHooks("payments")
    >>> @tenacity.retry(stop=tenacity.stop_after_attempt(3),
    ...                 **hooks.options(tenacity.retry_if_exception_type(OSError)))
    ... def charge(): ...  # doctest: +SKIP

    - :meth:`before_sleep`: an attempt failed and another follows (``RetryScheduled``);
    - :meth:`retry`: wraps the retry condition to see calls end with ``success`` or
      ``not_retryable`` (tenacity has no hook for a call that ends well);
    - :meth:`retry_error_callback`: attempts ran out (``exhausted``); it then raises as
      tenacity would have without it (``RetryError``, or the last exception with
      ``reraise=True``).

    tenacity's ``after`` hook runs before tenacity decides whether to stop, so it cannot
    say how a call ended: these three can. Works with ``AsyncRetrying`` too.
    """

    __slots__ = ("_name", "_registry")

    def __init__(self, name: str, *, events: ev.Registry = ev.default_registry) -> None:
        self._name = name
        self._registry = events

    def before_sleep(self, retry_state: Any) -> None:
        """Emit ``RetryScheduled`` for the attempt that just failed."""
        if self._registry.active:
            wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self._registry.emit(
                ev.RetryScheduled(
                    self._name, retry_state.attempt_number, wait, _error_type(retry_state)
                )
            )

    def retry(self, condition: Callable[[Any], bool]) -> Callable[[Any], bool]:
        """``condition`` (a tenacity retry strategy), also emitting how calls end."""

        def check(retry_state: Any) -> bool:
            decision = condition(retry_state)
            if not decision and self._registry.active:
                failed = retry_state.outcome is not None and retry_state.outcome.failed
                outcome: Literal["success", "not_retryable"] = (
                    "not_retryable" if failed else "success"
                )
                error_type = _error_type(retry_state) if failed else ""
                self._registry.emit(
                    ev.RetryFinished(self._name, retry_state.attempt_number, outcome, error_type)
                )
            return decision

        return check

    def retry_error_callback(self, retry_state: Any) -> Any:
        """Emit ``RetryFinished(outcome="exhausted")``, then raise as tenacity would."""
        if self._registry.active:
            self._registry.emit(
                ev.RetryFinished(
                    self._name, retry_state.attempt_number, "exhausted", _error_type(retry_state)
                )
            )
        retrying = retry_state.retry_object
        outcome = retry_state.outcome
        error = retrying.retry_error_cls(outcome)
        if retrying.reraise:
            error.reraise()
        raise error from outcome.exception()

    def options(self, retry: Callable[[Any], bool] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.retry``/``Retrying``: the three hooks.

        ``retry`` is the retry condition (tenacity's default, retry on any exception,
        when ``None``).
        """
        if retry is None:
            from tenacity import retry_if_exception_type

            retry = retry_if_exception_type()
        return {
            "retry": self.retry(retry),
            "before_sleep": self.before_sleep,
            "retry_error_callback": self.retry_error_callback,
        }
