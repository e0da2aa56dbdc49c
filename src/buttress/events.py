"""The events buttress strategies emit, and the registry of listeners that hear them.

A listener is any callable taking one event::

    def log_transitions(event: buttress.events.Event) -> None:
        if isinstance(event, buttress.events.BreakerTransition):
            print(event.name, event.old, "->", event.new)

    buttress.events.default_registry.add(log_transitions)
"""

from ._events import (
    AdmissionDecided,
    AdmissionLimitUpdated,
    BreakerCallRecorded,
    BreakerRejected,
    BreakerTransition,
    BulkheadRejected,
    BulkheadUsage,
    Event,
    FallbackUsed,
    FaultInjected,
    HedgeSent,
    HedgeWon,
    Listener,
    RateLimitRejected,
    RateLimitWaited,
    Registry,
    RetryFinished,
    RetryScheduled,
    StoreRecovered,
    StoreUnavailable,
    ThrottleRejected,
    ThrottleUpdated,
    TimeoutExpired,
    default_registry,
)

__all__ = [
    "AdmissionDecided",
    "AdmissionLimitUpdated",
    "BreakerCallRecorded",
    "BreakerRejected",
    "BreakerTransition",
    "BulkheadRejected",
    "BulkheadUsage",
    "Event",
    "FallbackUsed",
    "FaultInjected",
    "HedgeSent",
    "HedgeWon",
    "Listener",
    "RateLimitRejected",
    "RateLimitWaited",
    "Registry",
    "RetryFinished",
    "RetryScheduled",
    "StoreRecovered",
    "StoreUnavailable",
    "ThrottleRejected",
    "ThrottleUpdated",
    "TimeoutExpired",
    "default_registry",
]
