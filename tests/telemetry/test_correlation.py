from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import ConfigurationError, bound_correlation_id, get_correlation_id
from buttress.telemetry._correlation import (
    MAX_LENGTH,
    accept_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)

SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:+/=-")


def test_bound_id_is_visible_inside_and_reset_after() -> None:
    assert get_correlation_id() is None
    with bound_correlation_id("abc-123") as value:
        assert value == "abc-123"
        with bound_correlation_id("inner"):
            assert get_correlation_id() == "inner"
        assert get_correlation_id() == "abc-123"
    assert get_correlation_id() is None


def test_bound_id_is_reset_when_the_block_raises() -> None:
    with pytest.raises(KeyError), bound_correlation_id("x"):
        raise KeyError
    assert get_correlation_id() is None


def test_binding_an_unsafe_id_is_refused_and_named() -> None:
    with pytest.raises(ConfigurationError, match=r"'a\\r\\nb'"), bound_correlation_id("a\r\nb"):
        pass


async def test_concurrent_tasks_see_only_their_own_id() -> None:
    async def handle(i: int) -> str | None:
        with bound_correlation_id(f"req-{i}"):
            await asyncio.sleep(0)
            return get_correlation_id()

    assert await asyncio.gather(*(handle(i) for i in range(100))) == [
        f"req-{i}" for i in range(100)
    ]


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_correlation_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and is_valid_correlation_id(i) for i in ids)


@pytest.mark.parametrize(
    "value",
    ["", "a b", "a\r\nSet-Cookie: x", "nul\x00", "é", "<script>", "x" * (MAX_LENGTH + 1), '"q"'],
)
def test_unsafe_ids_are_invalid(value: str) -> None:
    assert not is_valid_correlation_id(value)
    assert not is_valid_correlation_id(value.encode("utf-8"))


@pytest.mark.parametrize(
    "value", ["0f8fad5b-d9cb-469f-a165-70867728950e", "svc:42", "YWJj+/==", "x" * MAX_LENGTH]
)
def test_common_id_shapes_are_kept(value: str) -> None:
    assert accept_correlation_id(value) == value
    assert accept_correlation_id(value.encode()) == value


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.none()))
def test_accepted_ids_are_always_safe(raw: str | bytes | None) -> None:
    accepted = accept_correlation_id(raw)
    assert 0 < len(accepted) <= MAX_LENGTH
    assert set(accepted) <= SAFE_CHARS
    if raw is not None and is_valid_correlation_id(raw):
        assert accepted == (raw if isinstance(raw, str) else raw.decode())


def test_max_length_is_configurable() -> None:
    assert accept_correlation_id("abcdef", max_length=4) != "abcdef"
    assert is_valid_correlation_id("abcd", max_length=4)
