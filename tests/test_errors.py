from __future__ import annotations

import pytest

import buttress
from buttress import (
    BulkheadFull,
    ButtressError,
    CircuitOpen,
    ConfigurationError,
    RateLimited,
    Rejected,
    TimedOut,
)


@pytest.mark.parametrize("error", [CircuitOpen, BulkheadFull, RateLimited, TimedOut])
def test_rejections_share_one_base(error: type[Exception]) -> None:
    assert issubclass(error, Rejected)
    assert issubclass(error, ButtressError)


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert not issubclass(ConfigurationError, Rejected)


def test_timed_out_is_a_timeout_error() -> None:
    error = TimedOut("too slow", name="db", timeout=1.5)
    assert isinstance(error, TimeoutError)
    assert (error.name, error.timeout, str(error)) == ("db", 1.5, "too slow")


def test_rejections_carry_their_details() -> None:
    assert CircuitOpen("open", name="b", retry_after=3.0).retry_after == 3.0
    assert CircuitOpen("forced", name="b", retry_after=None).retry_after is None
    assert RateLimited("slow down", name="r", retry_after=0.25).retry_after == 0.25
    assert BulkheadFull("full", name="pool").name == "pool"


def test_error_tree_is_drawn_in_the_docstring() -> None:
    doc = buttress._errors.__doc__ or ""
    for name in buttress._errors.__all__:
        assert name in doc
