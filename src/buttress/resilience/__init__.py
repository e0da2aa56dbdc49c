"""Resilience strategies: small state machines with injected clocks, composed by Policy."""

from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._config import is_testing, set_testing
from ._ratelimit import RateLimiter
from ._redis import RedisStore
from ._shell import Strategy

__all__ = [
    "Bulkhead",
    "CircuitBreaker",
    "RateLimiter",
    "RedisStore",
    "Strategy",
    "is_testing",
    "set_testing",
]
