"""buttress: resilient, observable Python back-end services.

The public surface is what ``__all__`` names; every other module is private. Submodules
``buttress.events``, ``buttress.testing``, ``buttress.middleware``,
``buttress.dashboards``, ``buttress.integrations`` and ``buttress.gunicorn`` are public
too.
"""

from ._errors import (
    BulkheadFull,
    ButtressError,
    ButtressWarning,
    CircuitOpen,
    ConfigurationError,
    DeadlineExceeded,
    RateLimited,
    Rejected,
    TimedOut,
)
from ._version import __version__
from .resilience import Policy, fallback, retry, timeout
from .resilience._breaker import CircuitBreaker
from .resilience._bulkhead import Bulkhead
from .resilience._faults import FaultInjection
from .resilience._ratelimit import RateLimiter
from .resilience._redis import RedisStore
from .telemetry._configure import Telemetry, configure
from .telemetry._correlation import bound_correlation_id, get_correlation_id, new_correlation_id
from .telemetry._logging import CorrelationFilter, add_correlation_ids
from .telemetry._multiprocess import clear_multiprocess_dir, mark_worker_dead, mark_worker_started
from .telemetry._rules import slo_rules
from .telemetry._slo import SLO, buckets_with_thresholds, load_slos

__all__ = [
    "Bulkhead",
    "BulkheadFull",
    "ButtressError",
    "ButtressWarning",
    "CircuitBreaker",
    "CircuitOpen",
    "ConfigurationError",
    "CorrelationFilter",
    "DeadlineExceeded",
    "FaultInjection",
    "Policy",
    "RateLimited",
    "RateLimiter",
    "RedisStore",
    "Rejected",
    "SLO",
    "Telemetry",
    "TimedOut",
    "__version__",
    "add_correlation_ids",
    "bound_correlation_id",
    "buckets_with_thresholds",
    "clear_multiprocess_dir",
    "configure",
    "fallback",
    "get_correlation_id",
    "load_slos",
    "mark_worker_dead",
    "mark_worker_started",
    "new_correlation_id",
    "retry",
    "slo_rules",
    "timeout",
]
