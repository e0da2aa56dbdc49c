"""A flaky function for the resilience tests (the fake clock is public: buttress.testing)."""

from __future__ import annotations


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
