"""Typed call sites: mypy --strict checks that decorators keep signatures and types.

They also run, so the examples stay true.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

import buttress
from buttress import Policy


@buttress.retry(on=ConnectionError, attempts=3, deadline=timedelta(seconds=5))
def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    return url.encode()


@buttress.retry(on=(ConnectionError, TimeoutError), on_result=lambda r: r == 503)
async def fetch_async(url: str) -> int:
    return len(url)


@Policy(buttress.fallback(b"", on=buttress.Rejected), buttress.timeout(2.0), name="p")
def guarded(n: int) -> bytes:
    return bytes(n)


def test_sync_signatures_are_kept() -> None:
    assert_type(fetch("a", timeout=2.0), bytes)
    assert_type(guarded(2), bytes)
    assert fetch("ab") == b"ab"
    assert guarded(2) == b"\x00\x00"


async def test_async_signatures_are_kept() -> None:
    assert_type(await fetch_async("abc"), int)
    assert await fetch_async("abc") == 3


async def test_call_keeps_types() -> None:
    policy = Policy(buttress.retry(on=ValueError), buttress.timeout(1))
    assert_type(policy.call(len, "abc"), int)
    assert_type(await policy.call(fetch_async, "ab"), int)
    assert policy.call(len, "abc") == 3
