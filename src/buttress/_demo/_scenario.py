"""The demo's timeline: when the upstream is healthy, down or slow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["healthy", "outage", "slow"]


@dataclass(frozen=True, slots=True)
class Phase:
    mode: Mode
    start: float  # share of the run, 0..1
    end: float
    title: str


# An outage, a recovery, then a latency spike, then calm: every strategy gets its turn.
PHASES = (
    Phase("healthy", 0.00, 0.25, "warm-up: the upstream is healthy"),
    Phase("outage", 0.25, 0.50, "outage: the upstream answers 503"),
    Phase("healthy", 0.50, 0.62, "recovery: the breaker probes and closes"),
    Phase("slow", 0.62, 0.80, "latency spike: the upstream takes up to 1.2 s"),
    Phase("healthy", 0.80, 1.01, "calm again"),
)


def phase_at(elapsed: float, duration: float) -> Phase:
    """The phase in force ``elapsed`` seconds into a run of ``duration`` seconds."""
    share = elapsed / duration if duration > 0 else 1.0
    for phase in PHASES:
        if phase.start <= share < phase.end:
            return phase
    return PHASES[-1]
