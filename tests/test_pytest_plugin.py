"""The pytest plugin as a user meets it: test files run by a real pytest in a subprocess.

Subprocesses, because span capture sets the global tracer provider (once per process),
and because the user's process starts with buttress's default listeners unloaded, unlike
ours whose conftest clears them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import asyncio
import logging

import prometheus_client
import pytest
from opentelemetry import trace

import buttress
from buttress.events import RetryFinished, RetryScheduled, default_registry
from buttress.telemetry import _metrics
from buttress.testing import FaultScript, inject_faults, set_testing


def charge(amount):
    return f"charged {amount}"


def test_retried_twice_without_sleeping(
    buttress_events, buttress_metrics, buttress_logs, fake_clock
):
    payments = buttress.retry(
        on=OSError, attempts=3, clock=fake_clock, sleep=fake_clock.sleep, name="payments"
    )
    flaky = FaultScript([OSError, OSError])(charge)
    assert payments.call(flaky, 10) == "charged 10"
    assert buttress_events.count(RetryScheduled, name="payments") == 2
    assert buttress_events.count(RetryFinished, outcome="success", attempts=3) == 1
    assert fake_clock.sleeps == [e.wait for e in buttress_events.of_type(RetryScheduled)]
    assert buttress_metrics.value("buttress_retry_attempts_total", policy="payments") == 2
    assert buttress_metrics.value("buttress_retry_calls_total", outcome="success") == 1
    assert [e["attempt"] for e in buttress_logs.named("buttress.retry.scheduled")] == [1, 2]


def test_async_retry_with_the_fake_clock(buttress_events, fake_clock):
    script = FaultScript([OSError])

    @buttress.retry(on=OSError, clock=fake_clock, sleep=fake_clock.async_sleep, name="a")
    @script
    async def fetch():
        return "ok"

    assert asyncio.run(fetch()) == "ok"
    assert len(fake_clock.sleeps) == 1
    assert buttress_events.names() == ["RetryScheduled", "RetryFinished"]


def test_metrics_start_from_zero_in_every_test(buttress_metrics):
    assert buttress_metrics.value("buttress_retry_attempts_total", policy="payments") == 0


def test_test_mode_makes_one_attempt_unless_told(buttress_test_mode, buttress_events):
    assert buttress.testing.is_testing()
    policy = buttress.retry(on=OSError, attempts=5, name="p")
    with pytest.raises(OSError):
        policy.call(FaultScript([OSError]).call, lambda: "ok")
    set_testing(attempts=2)
    assert policy.call(FaultScript([OSError]).call, lambda: "ok") == "ok"
    assert buttress_events.count(RetryScheduled, name="p") == 1  # only the second call retried


def test_faults_injected_into_a_policy(buttress_events):
    payments = buttress.Policy(
        buttress.fallback("later", on=OSError),
        buttress.retry(on=OSError, attempts=2, sleep=lambda s: None),
        name="payments",
    )
    faulty = inject_faults(payments, FaultScript.at_rate(1.0, OSError, seed=3))
    assert faulty.call(charge, 1) == "later"
    assert buttress_events.names() == ["RetryScheduled", "RetryFinished", "FallbackUsed"]


def test_spans_and_their_buttress_events(buttress_spans):
    tracer = trace.get_tracer("shop")
    policy = buttress.retry(on=OSError, sleep=lambda s: None, name="payments")
    with tracer.start_as_current_span("checkout"):
        policy.call(FaultScript([OSError])(charge), 5)
    [span] = buttress_spans.named("checkout")
    assert [e.name for e in span.events] == ["buttress.retry.scheduled", "buttress.retry.finished"]
    assert buttress_spans.provider is trace.get_tracer_provider()


def test_spans_belong_to_one_test(buttress_spans):
    assert buttress_spans.spans == []
    with trace.get_tracer("shop").start_as_current_span("mine"):
        pass
    assert buttress_spans.names() == ["mine"]
    buttress_spans.clear()
    assert buttress_spans.names() == []


def test_everything_is_restored_for_tests_without_fixtures():
    assert not buttress.testing.is_testing()
    assert _metrics.target_registry() is prometheus_client.REGISTRY
    assert logging.getLogger("buttress").level == logging.NOTSET
    # Only buttress's own default listeners may remain: no capture left behind.
    leftovers = [
        x for x in default_registry.listeners
        if not type(x).__module__.startswith("buttress.telemetry")
    ]
    assert leftovers == []
    with trace.get_tracer("shop").start_as_current_span("unobserved"):
        pass
"""

# A suite that, like ours, clears buttress's default listeners around every test.
CLEARING_CONFTEST = """
import pytest
from buttress.events import default_registry


@pytest.fixture(autouse=True)
def _no_default_listeners():
    default_registry.clear()
    yield
    default_registry.reset()
"""

USER_TEST_COUNT = USER_TESTS.count("\ndef test_")
# No cache files in the test folder; no pytest-asyncio, which a user may not have.
ISOLATED = ("-p", "no:cacheprovider", "-p", "no:asyncio")


def test_fixtures_work_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error"
    )
    result.assert_outcomes(passed=USER_TEST_COUNT)


def test_fixtures_work_when_the_suite_clears_the_default_listeners(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CLEARING_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error"
    )
    result.assert_outcomes(passed=USER_TEST_COUNT)


def test_a_failed_expectation_fails_the_users_test(pytester: pytest.Pytester) -> None:
    # The fixtures must not swallow assertion errors or hide what was captured.
    pytester.makepyfile(
        test_user="""
        import buttress
        from buttress.events import RetryScheduled
        from buttress.testing import FaultScript

        def test_expects_three_retries(buttress_events, fake_clock):
            policy = buttress.retry(on=OSError, clock=fake_clock, sleep=fake_clock.sleep)
            policy.call(FaultScript([OSError])(lambda: "ok"))
            assert buttress_events.count(RetryScheduled) == 3
        """
    )
    result = pytester.runpytest_subprocess(*ISOLATED)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 3*"])


def test_the_fixtures_are_listed_with_their_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures", *ISOLATED)
    for name in (
        "buttress_events",
        "buttress_metrics",
        "buttress_spans",
        "buttress_logs",
        "fake_clock",
        "buttress_test_mode",
    ):
        result.stdout.fnmatch_lines([f"{name}*"])


def test_with_autoload_disabled_the_plugin_loads_by_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user="def test_clock(fake_clock):\n    assert fake_clock() > 0\n")
    without = pytester.runpytest("-p", "no:cacheprovider")
    without.assert_outcomes(errors=1)  # fixture 'fake_clock' not found
    named = pytester.runpytest("-p", "no:cacheprovider", "-p", "buttress.testing.pytest_plugin")
    named.assert_outcomes(passed=1)


def test_a_run_without_buttress_fixtures_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_nothing():\n    pass\n")
    code = textwrap.dedent(
        """
        import sys, pytest
        status = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:asyncio", sys.argv[1]])
        print(*sorted(sys.modules))
        sys.exit(status)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(pytester.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(result.stdout.splitlines()[-1].split())
    assert "buttress.testing.pytest_plugin" in modules  # the plugin was loaded: the check can fail
    heavy = ("opentelemetry.sdk", "prometheus_client", "structlog")
    assert sorted(m for m in modules if m.startswith(heavy)) == []


def _docs_examples() -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_docs_example_passes_as_a_users_test_module(pytester: pytest.Pytester) -> None:
    example = _docs_examples()[0]
    pytester.makepyfile(test_from_docs=example)
    result = pytester.runpytest_subprocess(*ISOLATED, "-W", "error")
    result.assert_outcomes(passed=example.count("\ndef test_"))


def test_the_docs_example_without_pytest_runs() -> None:
    example = _docs_examples()[-1]
    assert "capture_metrics" in example  # the right block: otherwise this proves nothing
    exec(compile(example, "docs/testing.md", "exec"), {})
