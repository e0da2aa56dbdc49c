"""A fake monotonic clock whose sleeps only move time: tests never wait for real."""

from __future__ import annotations


class FakeClock:
    """``clock()`` reads the time; ``sleep`` and ``async_sleep`` advance it and record waits."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Flaky:
    """Fails with ``errors`` in order, then returns ``value``; counts calls."""

    def __init__(self, *errors: BaseException, value: object = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def run_async(self) -> object:
        return self()
