"""buttress: resilient, observable Python back-end services.

The top level holds what most code needs: the strategies, the errors, ``configure`` and
correlation ids. The other public modules each serve one kind of user:

- ``buttress.strategies``: the strategy types and the strategy API they share;
- ``buttress.deadline``: the deadline of the current context;
- ``buttress.events``: the events strategies emit and the registry of listeners;
- ``buttress.middleware``: ASGI, WSGI and Django middleware;
- ``buttress.httpx``: httpx transports for calls to other services;
- ``buttress.jobs``: background jobs and message consumers (Celery, Redis Streams);
- ``buttress.names``: every metric, label, span and log name buttress emits;
- ``buttress.slo``: SLOs and their recording and alerting rules;
- ``buttress.dashboards``: the Grafana dashboards;
- ``buttress.multiprocess`` and ``buttress.gunicorn``: metrics from worker processes;
- ``buttress.testing``: test mode, a fake clock, captures and the pytest plugin;
- ``buttress.integrations``: hooks for tenacity and pybreaker.

Every other module is private.
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
    Throttled,
    TimedOut,
)
from ._version import __version__
from .resilience._attempts import retrying
from .resilience._breaker import CircuitBreaker
from .resilience._bulkhead import Bulkhead
from .resilience._fallback import fallback
from .resilience._faults import FaultInjection
from .resilience._hedge import hedge
from .resilience._policy import Policy
from .resilience._ratelimit import RateLimiter
from .resilience._redis import RedisStore
from .resilience._retry import retry
from .resilience._throttle import throttle
from .resilience._timeout import timeout
from .telemetry._configure import Telemetry, configure
from .telemetry._correlation import bound_correlation_id, get_correlation_id, new_correlation_id
from .telemetry._logging import CorrelationFilter, add_correlation_ids

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
    "Telemetry",
    "Throttled",
    "TimedOut",
    "__version__",
    "add_correlation_ids",
    "bound_correlation_id",
    "configure",
    "fallback",
    "get_correlation_id",
    "hedge",
    "new_correlation_id",
    "retry",
    "retrying",
    "throttle",
    "timeout",
]
