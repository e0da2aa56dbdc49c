from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress._retry_after import parse_retry_after
from buttress.resilience._backoff import JITTERS, Backoff, Jitter

durations = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(
    initial=durations,
    spread=durations,
    base=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.sampled_from(JITTERS),
    attempt=st.integers(min_value=1, max_value=5000),
    previous=durations,
    r=unit,
)
def test_every_wait_is_within_its_bounds(
    initial: float,
    spread: float,
    base: float,
    jitter: Jitter,
    attempt: int,
    previous: float,
    r: float,
) -> None:
    backoff = Backoff(initial, initial + spread, base, jitter)
    wait = backoff.wait(attempt, previous, lambda: r)
    ceiling = backoff.ceiling(attempt)
    assert 0.0 <= wait <= backoff.maximum
    assert ceiling <= backoff.maximum
    if jitter == "full":
        assert wait <= ceiling
    elif jitter == "equal":
        assert ceiling / 2 <= wait <= ceiling
    elif jitter == "decorrelated":
        assert initial <= wait <= min(backoff.maximum, 3 * max(previous, initial)) + 1e-9
    else:
        assert wait == ceiling


def test_waits_grow_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(0.1, 1.0, 2.0, "none")
    waits = [backoff.wait(n, 0.0, lambda: 0.5) for n in range(1, 7)]
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    backoff = Backoff(1.0, 10.0, 2.0, "full")
    assert backoff.wait(3, 0.0, lambda: 0.0) == 0.0
    assert backoff.wait(3, 0.0, lambda: 0.5) == 2.0


def test_decorrelated_jitter_follows_the_previous_wait() -> None:
    backoff = Backoff(1.0, 100.0, 2.0, "decorrelated")
    assert backoff.wait(1, 0.0, lambda: 0.999) == pytest.approx(1.0 + 2.0 * 0.999)
    assert backoff.wait(2, 10.0, lambda: 0.5) == pytest.approx(1.0 + 29.0 * 0.5)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(1.0, 5.0, 10.0, "none").wait(10**6, 0.0, lambda: 0.0) == 5.0


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        (b"7", 7.0),
        (2.5, 2.5),
        (0, 0.0),
        (timedelta(seconds=4), 4.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Thu, 01 Jan 2026 12:01:00 GMT", 60.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        (-5, None),
        (float("nan"), None),
        (True, None),
        (b"\xff", None),
        ([1], None),
        ("Thu, 01 Jan 2026 12:01:00", None),  # no zone: not an HTTP date
    ],
)
def test_parse_retry_after(
    value: str | bytes | float | timedelta | None, expected: float | None
) -> None:
    assert parse_retry_after(value, now=NOW.timestamp) == expected
