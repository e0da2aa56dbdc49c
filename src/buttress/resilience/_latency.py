"""A latency percentile over the most recent samples, for the hedging delay.

Sans-IO: callers measure with their own (injected) clock and pass durations in. The
samples sit in a ring of fixed size; the percentile is recomputed (one sort of the ring)
every ``refresh`` observations rather than on every read, so observing costs one lock
and one store, and reading costs one attribute.
"""

from __future__ import annotations

import math
import threading

__all__ = ["LatencyEstimator"]


class LatencyEstimator:
    """The ``percentile`` (0-100) of the last ``size`` durations; ``None`` until
    ``min_samples`` were observed."""

    __slots__ = ("_count", "_lock", "_min", "_percentile", "_refresh", "_ring", "value")

    def __init__(
        self, *, percentile: float, size: int = 512, min_samples: int = 20, refresh: int = 16
    ) -> None:
        self._percentile = percentile
        self._ring: list[float] = [0.0] * size
        self._count = 0
        self._min = min_samples
        self._refresh = refresh
        self._lock = threading.Lock()
        self.value: float | None = None
        """The percentile as last computed, in seconds, or ``None`` (too few samples)."""

    @property
    def percentile(self) -> float:
        return self._percentile

    @property
    def count(self) -> int:
        """Durations observed so far (all of them, not only those still in the ring)."""
        return self._count

    def fresh(self) -> LatencyEstimator:
        """An empty estimator with the same settings."""
        return LatencyEstimator(
            percentile=self._percentile,
            size=len(self._ring),
            min_samples=self._min,
            refresh=self._refresh,
        )

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        with self._lock:
            ring = self._ring
            count = self._count
            ring[count % len(ring)] = seconds
            count = self._count = count + 1
            if count < self._min or (count % self._refresh and self.value is not None):
                return
            held = sorted(ring[: min(count, len(ring))])
        # Nearest rank: the smallest sample with at least ``percentile`` % at or below it.
        rank = max(1, math.ceil(self._percentile / 100.0 * len(held)))
        self.value = held[rank - 1]

    def __repr__(self) -> str:
        return f"LatencyEstimator(percentile={self._percentile!r}, value={self.value!r})"
