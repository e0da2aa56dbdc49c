"""Pure wait computation: exponential backoff with jitter.

No clock and no sleeping here: randomness is injected, so the bounds of every wait can be
checked by property tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    pass

__all__ = ["Backoff", "Jitter"]

Jitter: TypeAlias = Literal["full", "equal", "decorrelated", "none"]
JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits that grow from ``initial`` by ``base`` per attempt, capped at ``maximum``.

    ``jitter`` spreads the waits of many clients so their retries do not arrive in waves:

    - ``"full"``: uniform in ``[0, ceiling]`` (the least load on the dependency);
    - ``"equal"``: uniform in ``[ceiling / 2, ceiling]`` (never very short);
    - ``"decorrelated"``: uniform in ``[initial, 3 * previous wait]``, capped;
    - ``"none"``: exactly the ceiling,

    where ``ceiling = min(maximum, initial * base ** (attempt - 1))``.
    """

    initial: float
    maximum: float
    base: float
    jitter: Jitter

    def ceiling(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt ``attempt`` (1-based)."""
        try:
            grown = self.initial * self.base ** (attempt - 1)
        except OverflowError:  # a huge attempt number: the cap applies long before
            return self.maximum
        return min(self.maximum, grown)

    def wait(self, attempt: int, previous: float, random: Callable[[], float]) -> float:
        """The wait after failed attempt ``attempt``; ``previous`` is the last wait (or 0).

        ``random`` returns floats in ``[0, 1)``, as :func:`random.random` does.
        """
        jitter = self.jitter
        if jitter == "decorrelated":
            low = min(self.initial, self.maximum)
            high = min(self.maximum, 3.0 * max(previous, self.initial))
            return low + (high - low) * random()
        ceiling = self.ceiling(attempt)
        if jitter == "full":
            return ceiling * random()
        if jitter == "equal":
            half = ceiling / 2.0
            return half + half * random()
        return ceiling
