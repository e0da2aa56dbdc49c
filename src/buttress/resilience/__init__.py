"""Resilience strategies: small state machines with injected clocks, composed by Policy."""

from ._config import is_testing, set_testing
from ._fallback import fallback
from ._policy import Policy
from ._retry import retry
from ._shell import Strategy
from ._timeout import timeout

__all__ = [
    "Policy",
    "Strategy",
    "fallback",
    "is_testing",
    "retry",
    "set_testing",
    "timeout",
]
