"""Backoff waits as concrete numbers: each jitter under a seeded random, Retry-After forms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from buttress._retry_after import parse_retry_after
from buttress.resilience._backoff import JITTERS, Backoff

SEED = 20240


def draws(count: int) -> list[float]:
    rng = random.Random(SEED)
    return [rng.random() for _ in range(count)]


def waits(backoff: Backoff, attempts: int) -> list[float]:
    rng = random.Random(SEED)
    out: list[float] = []
    previous = 0.0
    for attempt in range(1, attempts + 1):
        previous = backoff.wait(attempt, previous, rng.random)
        out.append(previous)
    return out


def test_ceilings_grow_by_base_and_stop_at_the_maximum() -> None:
    b = Backoff(initial=0.5, maximum=5.0, base=3.0, jitter="none")
    assert [b.ceiling(n) for n in range(1, 5)] == [0.5, 1.5, 4.5, 5.0]
    assert b.ceiling(100_000) == 5.0  # 3.0 ** 99999 overflows: the cap, not an error
    assert waits(b, 4) == [0.5, 1.5, 4.5, 5.0]


def test_full_jitter_is_the_ceiling_times_the_draw() -> None:
    b = Backoff(initial=1.0, maximum=10.0, base=2.0, jitter="full")
    r = draws(5)
    assert waits(b, 5) == pytest.approx([1 * r[0], 2 * r[1], 4 * r[2], 8 * r[3], 10 * r[4]])


def test_equal_jitter_is_half_the_ceiling_plus_half_times_the_draw() -> None:
    b = Backoff(initial=1.0, maximum=10.0, base=2.0, jitter="equal")
    r = draws(5)
    expected = [c / 2 + c / 2 * x for c, x in zip([1, 2, 4, 8, 10], r, strict=True)]
    assert waits(b, 5) == pytest.approx(expected)
    # Distinct from no jitter and from full jitter under the same draws.
    assert waits(b, 5) != waits(Backoff(1.0, 10.0, 2.0, "none"), 5)
    assert waits(b, 5) != pytest.approx(waits(Backoff(1.0, 10.0, 2.0, "full"), 5))


def test_equal_jitter_spans_half_to_the_whole_ceiling() -> None:
    b = Backoff(initial=4.0, maximum=100.0, base=2.0, jitter="equal")
    assert b.wait(1, 0.0, lambda: 0.0) == 2.0
    assert b.wait(1, 0.0, lambda: 0.5) == 3.0
    assert b.wait(2, 0.0, lambda: 0.999) == pytest.approx(7.996)


def test_decorrelated_jitter_is_initial_to_three_times_the_previous_wait() -> None:
    b = Backoff(initial=1.0, maximum=20.0, base=2.0, jitter="decorrelated")
    assert b.wait(1, 0.0, lambda: 0.0) == 1.0  # previous below initial: initial
    assert b.wait(1, 0.0, lambda: 0.5) == 2.0  # 1 + (3 - 1) * 0.5
    assert b.wait(5, 4.0, lambda: 0.5) == 6.5  # 1 + (12 - 1) * 0.5: the attempt is unused
    assert b.wait(2, 10.0, lambda: 0.5) == 10.5  # 3 * 10 capped at 20
    low_cap = Backoff(initial=5.0, maximum=2.0, base=2.0, jitter="decorrelated")
    assert low_cap.wait(1, 0.0, lambda: 0.9) == 2.0  # both ends capped


def test_the_jitter_names() -> None:
    assert JITTERS == ("full", "equal", "decorrelated", "none")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"120", 120.0),
        (b" 7 ", 7.0),
        (b"0", 0.0),
        (b"\xff\xfe", None),
        (b"-5", None),
        (b"1.5", None),  # delay-seconds are whole
        (b"Sun, 01 Jan 2023 00:01:40 GMT", 100.0),
        (b"Sat, 31 Dec 2022 23:00:00 GMT", 0.0),  # in the past: no wait
        (b"Sun, 01 Jan 2023 00:01:40", None),  # no zone
        ("  42\t", 42.0),
        ("soon", None),
        (3, 3.0),
        (2.5, 2.5),
        (-1, None),
        (float("inf"), None),
        (float("nan"), None),
        (True, None),
        (None, None),
        (timedelta(seconds=90), 90.0),
        (timedelta(seconds=-1), None),
        (object(), None),
    ],
)
def test_retry_after_values(value: object, expected: float | None) -> None:
    now = datetime(2023, 1, 1, tzinfo=UTC).timestamp
    assert parse_retry_after(value, now=now) == expected  # type: ignore[arg-type]
