"""Sans-IO cores of the batched shared breaker and the leased shared rate limiter.

A replica decides alone and at once; it meets the fleet on an interval, in one exchange
that carries what it learnt since the last one and brings back the fleet's verdict. These
cores hold that logic with the time passed in; the Redis backends around them only move
:class:`Report` and :class:`Verdict` (or a lease) over the wire.

Breaker, per replica::

    closed (fleet) : a local BreakerCore decides; outcomes add up into the next report;
                     a local trip opens here at once and asks for an exchange at once
    open (fleet)   : refuse until the fleet's open period ends, then ask for a trial permit
    half_open      : only calls holding a permit the fleet granted pass (at most
                     ``half_open_permits`` across the fleet); their outcomes go at once
    Redis away     : the local BreakerCore decides alone; it was steered to each verdict,
                     so a breaker the fleet had open stays open

Rate limiter: tokens come from the shared bucket in leases sized by the replica's recent
demand (at most one interval of the whole rate per exchange); a call spends a leased token
without I/O. Every admitted call spent a token the shared bucket gave, so while Redis
answers the fleet admits at most ``burst + rate * t`` in any ``t`` seconds (plus each
replica's waiting reservations, when ``max_wait`` allows waiting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ._breaker_core import (
    CLOSED,
    FAILURE,
    FORCED_CLOSED,
    FORCED_OPEN,
    HALF_OPEN,
    IGNORED,
    OPEN,
    REJECTED,
    BreakerConfig,
    BreakerCore,
    Outcome,
    Reason,
    State,
    Transition,
)
from ._limiter_backend import TokenBucket

__all__ = ["TRIAL", "LeaseCore", "Report", "SharedBreakerCore", "Verdict"]

# Tickets of trial permits the fleet granted carry this bit, and the fleet's generation.
TRIAL: Final = 1 << 61
# An exchange asked for "at once" still waits this share of the interval after the last
# one: a burst of trips or trial outcomes costs Redis a few exchanges, not one per call.
URGENT_SHARE: Final = 0.2


@dataclass(frozen=True, slots=True)
class Report:
    """What a replica tells the fleet in one exchange."""

    calls: int = 0  # outcomes counted while closed, since the last report
    failures: int = 0
    slow: int = 0
    trailing: int = 0  # failures after the last success among them
    succeeded: bool = False  # a success among them: the fleet's run of failures restarts
    trip: Reason | None = None  # this replica's own breaker opened, and why
    generation: int = -1  # the fleet generation the trial results below belong to
    trial_successes: int = 0
    trial_failures: int = 0
    want: int = 0  # trial permits wanted
    returned: int = 0  # trial permits given back unused
    view: State = CLOSED  # this replica's state, to rebuild a fleet state that was lost
    view_remaining: float = 0.0  # seconds left of the open period in that view
    control: State | None = None  # force_open / force_closed / reset (CLOSED)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The fleet's state as one exchange left it."""

    state: State
    generation: int
    remaining: float | None  # open: until trials; half-open: until a round is reclaimed
    granted: int  # trial permits granted to this replica
    reason: Reason  # why the fleet is in this state


class SharedBreakerCore:
    """One replica's view of a fleet-wide breaker. Callers serialise access.

    Changes of this replica's state are appended to :attr:`transitions`, each with the
    fleet's reason; the shell announces them once it has let go of its lock.
    """

    __slots__ = (
        "_calls",
        "_failures",
        "_granted_round",
        "_last",
        "_permits",
        "_returned",
        "_slow",
        "_succeeded",
        "_trailing",
        "_trial_failures",
        "_trial_successes",
        "_trip",
        "_until",
        "_want",
        "config",
        "connected",
        "generation",
        "interval",
        "local",
        "state",
        "transitions",
        "urgent",
    )

    def __init__(self, config: BreakerConfig, interval: float) -> None:
        self.config = config
        self.interval = interval
        self.local = BreakerCore(config)
        self.state: State = CLOSED
        self.transitions: list[Transition] = []
        self.connected = False  # a verdict arrived and no exchange failed since
        self.generation = -1  # the fleet generation of the last verdict
        self.urgent = True  # the first exchange goes at once
        self._last = -math.inf  # when the last exchange was taken
        self._until = 0.0  # open: when the fleet's open period ends; half-open: reclaim
        self._permits = 0  # trial permits granted and not yet used
        self._granted_round = -1
        self._trip: Reason | None = None
        self._want = False
        self._returned = 0
        self._clear()

    def _clear(self) -> None:
        self._calls = self._failures = self._slow = self._trailing = 0
        self._succeeded = False
        self._trial_successes = self._trial_failures = 0

    def _set(self, new: State, reason: Reason) -> None:
        if new is not self.state:
            self.transitions.append(Transition(self.state, new, reason))
            self.state = new

    def _quiet(self) -> None:
        """Drop the local core's own transitions: while connected, the fleet's count."""
        self.local.transitions.clear()

    def _follow_local(self) -> None:
        """Alone (Redis away): this replica's state is the local core's, as it said.

        A trip alone is still news for the fleet: it goes in the next exchange, unless
        the local breaker closed again meanwhile.
        """
        for step in self.local.transitions:
            if step.old is CLOSED and step.new is OPEN:
                self._trip = step.reason
                self.urgent = True
            elif step.new is CLOSED:
                self._trip = None
            self._set(step.new, step.reason)
        self.local.transitions.clear()
        self.state = self.local.state

    # -- deciding ---------------------------------------------------------------------

    def admit(self, now: float) -> int:
        """A ticket for one call, or ``REJECTED``."""
        if not self.connected:
            ticket = self.local.admit(now)
            self._follow_local()
            return ticket
        state = self.state
        if state is CLOSED or state is FORCED_CLOSED:
            return self.local.admit(now)
        if state is FORCED_OPEN:
            return REJECTED
        if state is OPEN:
            if now >= self._until:
                # The fleet's open period is over: ask for a trial permit now.
                self._want = self.urgent = True
            return REJECTED
        if self._permits > 0:
            self._permits -= 1
            return TRIAL | self.generation
        self._want = True
        return REJECTED

    def record(self, now: float, ticket: int, outcome: Outcome, duration: float) -> bool:
        """Learn how a call went; ``True`` if it counted."""
        limit = self.config.slow_call_duration
        slow = limit is not None and duration >= limit and outcome is not IGNORED
        if ticket & TRIAL:
            return self._trial(now, ticket & ~TRIAL, outcome, slow)
        counted = self.local.record(now, ticket, outcome, duration)
        if not self.connected:
            self._follow_local()
            return counted
        if counted and outcome is not IGNORED and self.state is CLOSED:
            failure = outcome is FAILURE
            self._calls += 1
            self._failures += failure
            self._slow += slow
            if failure:
                self._trailing += 1
            else:
                self._trailing = 0
                self._succeeded = True
        local = self.local
        if local.state is OPEN and self.state is CLOSED:
            reason = local.transitions[-1].reason if local.transitions else Reason.NONE
            self._trip = reason
            self._until = now + self.config.reset_timeout
            self._set(OPEN, reason)
            self.urgent = True
        self._quiet()
        return counted

    def _trial(self, now: float, generation: int, outcome: Outcome, slow: bool) -> bool:
        if generation != self.generation or not self.connected:
            return False  # granted in an earlier round: the fleet has moved on
        self.urgent = True
        if outcome is IGNORED:
            self._returned += 1
            return True
        if outcome is FAILURE or (slow and self.config.slow_call_rate is not None):
            self._trial_failures += 1
            # Refuse here at once; the fleet's reply says for how long.
            self._until = now + self.config.reset_timeout
            self._set(OPEN, Reason.HALF_OPEN_FAILURE)
        else:
            self._trial_successes += 1
        return True

    # -- reading ----------------------------------------------------------------------

    def retry_after(self, now: float) -> float | None:
        """Seconds until a call may pass here; ``None`` when forced open."""
        if not self.connected:
            return self.local.retry_after(now)
        state = self.state
        if state is FORCED_OPEN:
            return None
        if state is OPEN:
            # Past the open period, a permit comes with the next exchange.
            return max(self._until - now, self.interval * URGENT_SHARE)
        if state is HALF_OPEN and self._permits == 0:
            return max(self._until - now, self.interval)
        return 0.0

    # -- exchanging -------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """Whether an exchange should be taken now."""
        since = now - self._last
        return since >= self.interval or (self.urgent and since >= self.interval * URGENT_SHARE)

    def report(self, now: float, control: State | None = None) -> Report:
        """What to send now; the counts reported are forgotten here."""
        self._last = now
        self.urgent = False
        state = self.state if self.connected else self.local.state
        # Half-open is rebuilt as open with no time left: trials may be asked for at once.
        remaining = self.retry_after(now) if state is OPEN else 0.0
        returned = self._returned
        if self.state is HALF_OPEN and self._permits and not self._want:
            returned += self._permits  # granted, but no call came for them: give back
            self._permits = 0
        report = Report(
            calls=self._calls,
            failures=self._failures,
            slow=self._slow,
            trailing=self._trailing,
            succeeded=self._succeeded,
            trip=self._trip,
            generation=self.generation,
            trial_successes=self._trial_successes,
            trial_failures=self._trial_failures,
            want=self.config.half_open_permits if self._want else 0,
            returned=returned,
            view=state,
            view_remaining=remaining or 0.0,
            control=control,
        )
        self._clear()
        self._trip = None
        self._want = False
        self._returned = 0
        return report

    def apply(self, now: float, verdict: Verdict) -> None:
        """Take the fleet's verdict: this replica's state follows it."""
        local = self.local
        if not self.connected:
            self.connected = True
            self.state = local.state
        if verdict.generation != self.generation:
            self._permits = 0  # permits of an earlier round are void
        self.generation = verdict.generation
        self._permits += verdict.granted
        state = verdict.state
        if self._trip is not None and state is CLOSED:
            return  # a trip since the report: it goes in the next exchange
        if state is CLOSED:
            if local.state is not CLOSED:
                local.reset()
        elif state is OPEN or state is HALF_OPEN:
            # Steered open, so that if Redis goes away this replica stays open.
            local.trip(now, verdict.reason)
            self._until = now + (verdict.remaining or 0.0)
        else:
            local.force("forced_open" if state is FORCED_OPEN else "forced_closed")
        self._quiet()
        self._set(state, verdict.reason)

    def steer_alone(self, target: State) -> None:
        """Force or reset (``CLOSED``) this replica while the fleet cannot be reached."""
        local = self.local
        if target is CLOSED:
            local.reset()
        else:
            local.force("forced_open" if target is FORCED_OPEN else "forced_closed")
        self.connected = False
        self._follow_local()

    def failed(self, report: Report) -> None:
        """The exchange failed: decide alone until one succeeds."""
        if report.trip is not None and self._trip is None:
            self._trip = report.trip  # this replica's evidence still reaches the fleet later
        self.connected = False
        self._permits = 0
        self._clear()
        self._follow_local()


class LeaseCore:
    """One replica's lease of tokens from a shared bucket. Callers serialise access.

    Until the first lease arrives, and while Redis is away, the replica decides on its
    own bucket (:attr:`alone`) with the full rate and burst, as an unshared limiter would.
    """

    __slots__ = (
        "_debt",
        "_demand",
        "_last",
        "_wanted",
        "alone",
        "cap",
        "connected",
        "interval",
        "known",
        "retry",
        "tokens",
        "urgent",
    )

    def __init__(self, rate: float, burst: float, interval: float, now: float) -> None:
        self.interval = interval
        self.alone = TokenBucket(rate, burst, now)
        # One exchange leases at most one interval of the whole fleet's rate.
        self.cap = max(1, math.ceil(rate * interval))
        self.tokens = 0
        self.connected = False
        self.known = False  # a lease came once: a missing bucket was lost, not new
        self.urgent = True
        self.retry = 1 / rate  # the shared bucket's wait for a token, as last reported
        self._last = -math.inf
        self._demand = 0  # calls asked since the last exchange
        self._wanted = self.cap  # demand of the last interval: the next lease's size
        self._debt = 0  # reservations made against the next lease

    def take(self, now: float, max_wait: float) -> float:
        """As :meth:`TokenBucket.take`: 0, a wait for a reserved token, or minus a wait."""
        self._demand += 1
        if not self.connected:
            return self.alone.take(now, max_wait)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        self.urgent = True
        wait = max(self._last + self.interval - now, self.retry, 0.001)
        if max_wait > 0 and wait <= max_wait and self._debt < self.cap:
            self._debt += 1
            return wait
        return -wait

    def give_back(self, now: float) -> None:
        if not self.connected:
            self.alone.give_back(now)
        elif self._debt:
            self._debt -= 1
        else:
            self.tokens += 1

    def due(self, now: float) -> bool:
        # At most one exchange per interval, even with the lease spent: tokens wait in
        # the shared bucket meanwhile (lost only past ``burst``), so the fleet's rate holds
        # and Redis sees a fixed number of exchanges whatever the call rate.
        if now - self._last < self.interval:
            return False
        # Idle with tokens to spare: one more exchange gives them back.
        return self.urgent or self._demand > 0 or self.tokens > 2

    def ask(self, now: float) -> tuple[int, int]:
        """Tokens to ask for and tokens to give back, in the exchange taken now."""
        seconds = max(now - self._last, self.interval)
        self._last = now
        self.urgent = False
        # Size the lease to one interval of recent demand, with headroom for growth.
        demand = math.ceil(2 * self._demand * self.interval / seconds)
        # The first lease is a full slice: a replica starting under load is not starved.
        self._wanted = self.cap if not self.known else min(self.cap, max(1, demand))
        self._demand = 0
        if self.tokens > 2 * self._wanted:
            returned = self.tokens - self._wanted
            self.tokens = self._wanted
            return 0, returned
        return max(0, self._wanted + self._debt - self.tokens), 0

    def leased(self, granted: int, retry: float) -> None:
        """A lease arrived: ``granted`` tokens; ``retry`` until the bucket has one more."""
        self.connected = self.known = True
        self.retry = retry
        paid = min(self._debt, granted)
        self._debt -= paid
        self.tokens += granted - paid

    def failed(self) -> None:
        """The exchange failed: decide alone; tokens leased are spent alone too."""
        self.connected = False
        self.tokens = 0
        self._debt = 0
