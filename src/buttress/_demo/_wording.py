"""The words a newcomer reads: one plain name for each figure the demo shows.

The live view, the summary and the report all take their labels from here, so a figure
is called the same everywhere, and no event's internal name (``not_retryable``) reaches a
reader without saying what actually happened.
"""

from __future__ import annotations

from typing import Final

# How each call to pricing ended, from the retry's point of view. The keys are the stable
# names in summary.json; the values are what a person reads.
CALL_OUTCOMES: Final = {
    "first_attempt": "answered at the first attempt",
    "after_retries": "answered after retrying",
    "refused_by_open_breaker": "refused by the open breaker (pricing not called)",
    "refused_by_full_bulkhead": "refused by the full bulkhead (too many calls in flight)",
    "timed_out": "timed out (a slow upstream is not retried)",
    "failed_every_attempt": "failed on every attempt",
    "retry_budget_spent": "failed, not retried: the retry budget was spent",
    "deadline_reached": "failed, not retried: no time left before the deadline",
    "error_not_retried": "failed with an error that is not retried",
}

REFUSALS: Final = {
    "breaker": "refused by the open breaker",
    "bulkhead": "refused by the full bulkhead",
    "ratelimit": "refused by the rate limiter",
}

# Exception class names of refusals and timeouts, as retry and breaker events carry them.
_REFUSED: Final = {
    "CircuitOpen": "refused_by_open_breaker",
    "BulkheadFull": "refused_by_full_bulkhead",
}
_TIMEOUTS: Final = frozenset(
    {"TimedOut", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout", "TimeoutError"}
)


def call_outcome(outcome: str, attempts: int, error_type: str) -> str:
    """The key of :data:`CALL_OUTCOMES` for one finished retry (a ``RetryFinished``)."""
    if outcome == "success":
        return "first_attempt" if attempts <= 1 else "after_retries"
    refused = _REFUSED.get(error_type)
    if refused is not None:
        return refused
    if error_type in _TIMEOUTS:
        return "timed_out"
    return {
        "exhausted": "failed_every_attempt",
        "budget": "retry_budget_spent",
        "deadline": "deadline_reached",
    }.get(outcome, "error_not_retried")


def retry_reason(error_type: str) -> str:
    """What made an attempt worth trying again, in words (a ``RetryScheduled``)."""
    if error_type == "result":
        return "5xx answer"
    if error_type in _TIMEOUTS:
        return "timeout"
    return error_type


def overspent(left: float) -> str:
    """``"overspent 1.04x"`` for a budget share ``left`` below zero: the budget spent
    1.04 times over. Two decimals under 10x, so a run just past its budget does not read
    as exactly spent."""
    spent = 1 - left
    return f"overspent {spent:.2f}x" if spent < 10 else f"overspent {spent:.1f}x"


def counts_text(counts: dict[str, int], words: dict[str, str]) -> str:
    """``"answered at the first attempt 90, refused by the open breaker 3"``, largest first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{words.get(key, key)} {value}" for key, value in ordered if value)
