"""The public surface is pinned: adding or removing a public name is a deliberate change."""

from __future__ import annotations

import buttress
import buttress.dashboards
import buttress.events
import buttress.gunicorn
import buttress.integrations
import buttress.testing


def test_top_level_names() -> None:
    assert sorted(buttress.__all__) == [
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


def test_every_exported_name_exists() -> None:
    modules = (
        buttress,
        buttress.dashboards,
        buttress.events,
        buttress.gunicorn,
        buttress.integrations,
    )
    for module in (*modules, buttress.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_events_names() -> None:
    assert sorted(buttress.events.__all__) == [
        "BreakerCallRecorded",
        "BreakerRejected",
        "BreakerTransition",
        "BulkheadRejected",
        "BulkheadUsage",
        "Event",
        "FallbackUsed",
        "FaultInjected",
        "Listener",
        "RateLimitRejected",
        "RateLimitWaited",
        "Registry",
        "RetryFinished",
        "RetryScheduled",
        "StoreRecovered",
        "StoreUnavailable",
        "TimeoutExpired",
        "default_registry",
    ]


def test_testing_names() -> None:
    assert sorted(buttress.testing.__all__) == [
        "CALL",
        "CapturedEvents",
        "CapturedLogs",
        "CapturedMetrics",
        "CapturedSpans",
        "FakeClock",
        "FaultScript",
        "capture_events",
        "capture_logs",
        "capture_metrics",
        "capture_spans",
        "inject_faults",
        "is_testing",
        "set_testing",
    ]


def test_dashboards_names() -> None:
    assert sorted(buttress.dashboards.__all__) == ["export", "load", "names"]


def test_version_is_a_string() -> None:
    assert isinstance(buttress.__version__, str)
    assert buttress.__version__[0].isdigit()


def test_integrations_names() -> None:
    assert sorted(buttress.integrations.__all__) == ["PybreakerListener", "TenacityHooks"]


def test_gunicorn_hook_names() -> None:
    # gunicorn finds its hooks by these exact names.
    assert sorted(buttress.gunicorn.__all__) == ["child_exit", "on_starting", "post_fork"]
