"""The public surface is pinned: adding or removing a public name is a deliberate change."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import buttress
import buttress.dashboards
import buttress.deadline
import buttress.events
import buttress.gunicorn
import buttress.httpx
import buttress.integrations
import buttress.jobs
import buttress.middleware
import buttress.multiprocess
import buttress.names
import buttress.slo
import buttress.strategies
import buttress.testing
import buttress.testing.pytest_plugin

PUBLIC_MODULES: tuple[ModuleType, ...] = (
    buttress,
    buttress.dashboards,
    buttress.deadline,
    buttress.events,
    buttress.gunicorn,
    buttress.httpx,
    buttress.integrations,
    buttress.jobs,
    buttress.middleware,
    buttress.multiprocess,
    buttress.names,
    buttress.slo,
    buttress.strategies,
    buttress.testing,
    buttress.testing.pytest_plugin,
)
# Packages that only hold private modules: importable, but no home of public names.
PRIVATE_PACKAGES = ("buttress.resilience", "buttress.telemetry")


def _public_members(module: ModuleType) -> set[str]:
    """The names a reader of ``module`` would take for its public API."""
    members = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name in {"annotations", "TYPE_CHECKING"}:
            continue
        if isinstance(value, ModuleType):
            continue  # a submodule, or an import such as ``from .telemetry import _names``
        if getattr(value, "__module__", None) in {"typing", "collections.abc"}:
            continue  # ``Any`` and friends, imported for annotations
        members.add(name)
    return members


def _module_names() -> list[str]:
    found = ["buttress"]
    for info in pkgutil.walk_packages(buttress.__path__, "buttress."):
        found.append(info.name)
    return found


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_exactly_the_public_names(module: ModuleType) -> None:
    # As httpx's test_exported_members: nothing public that __all__ does not name, and
    # __all__ names nothing that is not there (lazily loaded names are checked by access).
    assert list(module.__all__) == sorted(module.__all__), module.__name__
    lazy = {name for name in module.__all__ if name not in vars(module)}
    assert set(module.__all__) - lazy - {"__version__"} == _public_members(module)
    for name in lazy:
        assert getattr(module, name) is not None


def test_every_other_module_is_private() -> None:
    public = {m.__name__ for m in PUBLIC_MODULES}
    stray = []
    for name in _module_names():
        if name in public or name in PRIVATE_PACKAGES or name == "buttress.__main__":
            continue
        if not any(part.startswith("_") for part in name.split(".")):
            stray.append(name)
    assert stray == []


@pytest.mark.parametrize("name", PRIVATE_PACKAGES)
def test_private_packages_export_nothing(name: str) -> None:
    package = importlib.import_module(name)
    assert not hasattr(package, "__all__")
    assert _public_members(package) == set()


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


def test_home_modules_names() -> None:
    assert buttress.strategies.__all__ == [
        "Attempt",
        "Attempts",
        "Fallback",
        "Hedge",
        "Retry",
        "Strategy",
        "Throttle",
        "Timeout",
    ]
    assert buttress.deadline.__all__ == ["current_deadline", "deadline_scope", "remaining"]
    assert buttress.slo.__all__ == ["SLO", "buckets_with_thresholds", "load_slos", "slo_rules"]
    assert buttress.multiprocess.__all__ == [
        "clear_multiprocess_dir",
        "mark_worker_dead",
        "mark_worker_started",
    ]
    assert "HTTP_SERVER_DURATION" in buttress.names.__all__
    assert all(name.isupper() for name in buttress.names.__all__)


def test_every_exported_name_exists() -> None:
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_events_names() -> None:
    assert sorted(buttress.events.__all__) == [
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
