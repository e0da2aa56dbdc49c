"""buttress: resilient, observable Python back-end services.

The public surface is what ``__all__`` names; every other module is private. Submodules
``buttress.events``, ``buttress.testing``, ``buttress.middleware`` and
``buttress.dashboards`` are public too.
"""

from ._errors import (
    BulkheadFull,
    ButtressError,
    ButtressWarning,
    CircuitOpen,
    ConfigurationError,
    RateLimited,
    Rejected,
    TimedOut,
)
from ._version import __version__
from .resilience._breaker import CircuitBreaker
from .resilience._bulkhead import Bulkhead
from .resilience._ratelimit import RateLimiter
from .resilience._redis import RedisStore
from .telemetry._correlation import bound_correlation_id, get_correlation_id, new_correlation_id

__all__ = [
    "Bulkhead",
    "BulkheadFull",
    "ButtressError",
    "ButtressWarning",
    "CircuitBreaker",
    "CircuitOpen",
    "ConfigurationError",
    "RateLimited",
    "RateLimiter",
    "RedisStore",
    "Rejected",
    "TimedOut",
    "__version__",
    "bound_correlation_id",
    "get_correlation_id",
    "new_correlation_id",
]
