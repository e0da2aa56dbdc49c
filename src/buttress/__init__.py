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
from .telemetry._correlation import bound_correlation_id, get_correlation_id, new_correlation_id
from .telemetry._rules import slo_rules
from .telemetry._slo import SLO, buckets_with_thresholds, load_slos

__all__ = [
    "BulkheadFull",
    "ButtressError",
    "ButtressWarning",
    "CircuitOpen",
    "ConfigurationError",
    "RateLimited",
    "Rejected",
    "SLO",
    "TimedOut",
    "__version__",
    "bound_correlation_id",
    "buckets_with_thresholds",
    "get_correlation_id",
    "load_slos",
    "new_correlation_id",
    "slo_rules",
]
