"""Resilience strategies: small state machines with injected clocks, composed by Policy."""

from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._config import is_testing, set_testing
from ._fallback import fallback
from ._policy import Policy
from ._ratelimit import RateLimiter
from ._redis import RedisStore
from ._retry import retry
from ._shell import Strategy
from ._timeout import timeout

__all__ = [
    "Bulkhead",
    "CircuitBreaker",
    "Policy",
    "RateLimiter",
    "RedisStore",
    "Strategy",
    "fallback",
    "is_testing",
    "retry",
    "set_testing",
    "timeout",
]
