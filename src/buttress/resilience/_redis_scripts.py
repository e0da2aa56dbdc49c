"""The Lua scripts behind :class:`RedisStore`, and the Python that builds their arguments.

One atomic round trip per decision. The breaker scripts mirror
:class:`._breaker_core.BreakerCore` step for step, and speak its enums: every script
starts with Lua constants generated from :class:`State`, :class:`Outcome` and
:class:`Reason`, so a code means the same on both sides by construction. The opening
rule's ratios are integer fractions here as in the core (``failures * den >= num *
calls``), so both judge a boundary alike.

The time is the server's (``TIME``), so replicas with skewed clocks still agree on when a
breaker opened and how full a bucket is, unless the store passes its own clock's time
(``server_time=False``, for tests driven by a fake clock).

Breaker hash fields: ``st`` state code, ``gen`` generation, ``ou`` "until" (ms: while
open, when the open period ends; while half-open, when an unanswered round of trials is
reclaimed), ``to`` current reset timeout (ms), ``cf`` consecutive failures, ``hi`` trials
in flight, ``hs`` trial successes, ``wc``/``wf``/``ws`` count-window totals. The count
window is a list key (``:window``); the time window a hash of 20 buckets (``:buckets``).
"""

from __future__ import annotations

from typing import Final

from ._breaker_core import (
    REASONS_BY_CODE,
    REJECTED,
    STATES_BY_CODE,
    BreakerConfig,
    Outcome,
    Reason,
    State,
    Transition,
)

__all__ = [
    "BREAKER_ADMIT",
    "BREAKER_CONTROL",
    "BREAKER_PEEK",
    "BREAKER_RECORD",
    "BUCKET_GIVE_BACK",
    "BUCKET_TAKE",
    "BreakerArgs",
    "admitted",
    "recorded",
]


def _constants() -> str:
    states = "\n".join(f"local {state.name} = {state.code}" for state in State)
    outcomes = "\n".join(f"local {outcome.name} = {outcome.value}" for outcome in Outcome)
    reasons = "\n".join(f"local R_{reason.name} = {reason.code}" for reason in Reason)
    return f"{states}\n{outcomes}\n{reasons}\n"


# ARGV[1] is the time in ms from the client, or "" to read the server's.
_CLOCK: Final = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
"""

_COMMON: Final = (
    _constants()
    + _CLOCK
    + """
now = math.floor(now)
local key = KEYS[1]
local function move(gen, new)
  redis.call('HSET', key, 'st', new, 'gen', gen + 1, 'cf', 0, 'hi', 0, 'hs', 0,
             'wc', 0, 'wf', 0, 'ws', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
end
"""
)

# ARGV: now, permits, ttl_ms, trial_wait_ms. Returns {ticket or -1, state, retry_after_ms
# (-1 when forced open), old state or -1 (when a transition to half-open happened), its
# reason code}.
BREAKER_ADMIT: Final = (
    _COMMON
    + """
local permits = tonumber(ARGV[2])
local trial_wait = tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'st', 'gen', 'ou', 'hi', 'hs')
local st = tonumber(h[1]) or CLOSED
local gen = tonumber(h[2]) or 0
if st == CLOSED or st == FORCED_CLOSED then return {gen * 2, st, 0, -1, R_NONE} end
if st == FORCED_OPEN then return {-1, st, -1, -1, R_NONE} end
local old = -1
local reason = R_NONE
local ou = tonumber(h[3]) or 0
local hi = tonumber(h[4]) or 0
local hs = tonumber(h[5]) or 0
if st == OPEN then
  if now < ou then return {-1, st, ou - now, -1, R_NONE} end
  move(gen, HALF_OPEN)
  gen = gen + 1
  ou = now + trial_wait
  redis.call('HSET', key, 'ou', ou)
  old = OPEN
  reason = R_RESET_TIMEOUT
  hi = 0
  hs = 0
elseif hi + hs >= permits then
  -- No verdict for a whole round: a trial hung, or a replica died (or lost its reply)
  -- mid-trial. Reclaim the permits under a new generation, so late outcomes of the old
  -- round count for nothing.
  if now < ou then return {-1, HALF_OPEN, ou - now, -1, R_NONE} end
  move(gen, HALF_OPEN)
  gen = gen + 1
  ou = now + trial_wait
  redis.call('HSET', key, 'ou', ou)
  old = HALF_OPEN
  reason = R_HALF_OPEN_MAX_WAIT
  hi = 0
  hs = 0
end
redis.call('HSET', key, 'hi', hi + 1)
redis.call('PEXPIRE', key, ARGV[3])
return {gen * 2 + 1, HALF_OPEN, 0, old, reason}
"""
)

# ARGV: now, ticket, outcome, slow (0/1), then BreakerArgs.record (consecutive (0 = off),
# failure num, failure den, slow num, slow den (-1 = off), window (calls or ms),
# window_type (0 count, 1 time), minimum_calls, reset_timeout_ms, backoff, max_reset_ms,
# permits, ttl_ms). Returns {counted 0/1, old state, new state or -1, reason code}.
BREAKER_RECORD: Final = (
    _COMMON
    + """
local ticket = tonumber(ARGV[2])
local outcome = tonumber(ARGV[3])
local slow = tonumber(ARGV[4])
local consecutive = tonumber(ARGV[5])
local fnum, fden = tonumber(ARGV[6]), tonumber(ARGV[7])
local snum, sden = tonumber(ARGV[8]), tonumber(ARGV[9])
local window = tonumber(ARGV[10])
local window_type = tonumber(ARGV[11])
local minimum = tonumber(ARGV[12])
local base_to = tonumber(ARGV[13])
local backoff = tonumber(ARGV[14])
local max_to = tonumber(ARGV[15])
local permits = tonumber(ARGV[16])
local ttl = ARGV[17]
local h = redis.call('HMGET', key, 'st', 'gen', 'to', 'cf', 'hi', 'hs')
local st = tonumber(h[1]) or CLOSED
local gen = tonumber(h[2]) or 0
local to = tonumber(h[3]) or base_to
if math.floor(ticket / 2) ~= gen or st == FORCED_CLOSED then return {0, st, -1, R_NONE} end
local function open(timeout, reason)
  timeout = math.floor(timeout)
  redis.call('HSET', key, 'ou', now + timeout, 'to', timeout)
  move(gen, OPEN)
  redis.call('PEXPIRE', key, ttl)
  return {1, st, OPEN, reason}
end
if ticket % 2 == 1 then
  local hi = tonumber(h[5]) or 1
  redis.call('HSET', key, 'hi', math.max(hi - 1, 0))
  if outcome == IGNORED then return {1, st, -1, R_NONE} end
  if outcome == FAILURE or (slow == 1 and snum >= 0) then
    return open(math.min(to * backoff, max_to), R_HALF_OPEN_FAILURE)
  end
  local hs = (tonumber(h[6]) or 0) + 1
  if hs >= permits then
    redis.call('HSET', key, 'to', base_to)
    move(gen, CLOSED)
    redis.call('PEXPIRE', key, ttl)
    return {1, st, CLOSED, R_HALF_OPEN_SUCCESS}
  end
  redis.call('HSET', key, 'hs', hs)
  return {1, st, -1, R_NONE}
end
if outcome == IGNORED then return {1, st, -1, R_NONE} end
local failure = 0
if outcome == FAILURE then failure = 1 end
local calls, failures, slows = 0, 0, 0
local counting = fnum >= 0 or snum >= 0
if not counting then
  -- consecutive failures only: no window to keep
elseif window_type == 0 then
  redis.call('LPUSH', KEYS[2], 1 + 2 * failure + 4 * slow)
  local dc, df, ds = 1, failure, slow
  if redis.call('LLEN', KEYS[2]) > window then
    local gone = tonumber(redis.call('RPOP', KEYS[2]))
    dc = dc - 1
    df = df - math.floor(gone / 2) % 2
    ds = ds - math.floor(gone / 4) % 2
  end
  calls = redis.call('HINCRBY', key, 'wc', dc)
  failures = redis.call('HINCRBY', key, 'wf', df)
  slows = redis.call('HINCRBY', key, 'ws', ds)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  local width = window / 20
  local index = math.floor(now / width)
  local slot = index % 20
  if tonumber(redis.call('HGET', KEYS[3], 'e' .. slot)) ~= index then
    redis.call('HSET', KEYS[3], 'e' .. slot, index, 'c' .. slot, 0, 'f' .. slot, 0,
               's' .. slot, 0)
  end
  redis.call('HINCRBY', KEYS[3], 'c' .. slot, 1)
  redis.call('HINCRBY', KEYS[3], 'f' .. slot, failure)
  redis.call('HINCRBY', KEYS[3], 's' .. slot, slow)
  redis.call('PEXPIRE', KEYS[3], ttl)
  local b = redis.call('HGETALL', KEYS[3])
  local fields = {}
  for i = 1, #b, 2 do fields[b[i]] = tonumber(b[i + 1]) end
  for s = 0, 19 do
    local e = fields['e' .. s]
    if e and e > index - 20 then
      calls = calls + fields['c' .. s]
      failures = failures + fields['f' .. s]
      slows = slows + fields['s' .. s]
    end
  end
end
local cf = 0
if failure == 1 then cf = (tonumber(h[4]) or 0) + 1 end
if cf > 0 or tonumber(h[4]) ~= 0 then redis.call('HSET', key, 'cf', cf) end
redis.call('PEXPIRE', key, ttl)
-- The opening rule (OpeningRule in the core), in integers.
if consecutive > 0 and cf >= consecutive then return open(to, R_CONSECUTIVE_FAILURES) end
if counting and calls >= minimum then
  if fnum >= 0 and failures * fden >= fnum * calls then return open(to, R_FAILURE_RATE) end
  if snum >= 0 and slows * sden >= snum * calls then return open(to, R_SLOW_CALL_RATE) end
end
return {1, st, -1, R_NONE}
"""
)

# ARGV: now, target state (CLOSED = reset, FORCED_OPEN, FORCED_CLOSED), reset_timeout_ms,
# ttl_ms. Returns {old state, new state or -1}.
BREAKER_CONTROL: Final = (
    _COMMON
    + """
local target = tonumber(ARGV[2])
local h = redis.call('HMGET', key, 'st', 'gen')
local st = tonumber(h[1]) or CLOSED
local gen = tonumber(h[2]) or 0
if target == CLOSED then redis.call('HSET', key, 'to', ARGV[3]) end
redis.call('PEXPIRE', key, ARGV[4])
if st == target then
  if target == CLOSED then move(gen, CLOSED) end
  return {st, -1}
end
move(gen, target)
return {st, target}
"""
)

# ARGV: now, permits. Returns {state, retry_after_ms (-1 when forced open)}.
BREAKER_PEEK: Final = (
    _COMMON
    + """
local h = redis.call('HMGET', key, 'st', 'ou', 'hi', 'hs')
local st = tonumber(h[1]) or CLOSED
if st == FORCED_OPEN then return {st, -1} end
local wait = math.max((tonumber(h[2]) or 0) - now, 0)
if st == OPEN then return {st, wait} end
if st == HALF_OPEN and (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0) >= tonumber(ARGV[2]) then
  return {st, wait}
end
return {st, 0}
"""
)

_BUCKET: Final = (
    _CLOCK
    + """
local key = KEYS[1]
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local h = redis.call('HMGET', key, 'tk', 'ts')
local tokens = tonumber(h[1]) or burst
local stamp = tonumber(h[2]) or now
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
"""
)

# ARGV: now, rate (tokens per ms), burst, max_wait_ms, ttl_ms. Returns the wait in ms as
# a string (a Lua number would be truncated to an integer): 0 granted, > 0 reserved,
# < 0 refused (minus the time until the next token). Mirrors TokenBucket.take.
BUCKET_TAKE: Final = (
    _BUCKET
    + """
local max_wait = tonumber(ARGV[4])
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
  if wait <= max_wait then tokens = tokens - 1 else wait = -wait end
end
redis.call('HSET', key, 'tk', tostring(tokens), 'ts', tostring(stamp))
redis.call('PEXPIRE', key, ARGV[5])
return tostring(wait)
"""
)

# ARGV: now, rate, burst, ttl_ms. A reserved token its waiter never used comes back.
# Mirrors TokenBucket.give_back.
BUCKET_GIVE_BACK: Final = (
    _BUCKET
    + """
tokens = math.min(burst, tokens + 1)
redis.call('HSET', key, 'tk', tostring(tokens), 'ts', tostring(stamp))
redis.call('PEXPIRE', key, ARGV[4])
return tostring(tokens)
"""
)


class BreakerArgs:
    """A breaker's script arguments, built once from its config (after the time)."""

    __slots__ = ("admit", "control_tail", "peek", "record", "slow_limit")

    def __init__(self, config: BreakerConfig, ttl_ms: int) -> None:
        rule = config.rule
        off = (-1, -1)
        self.slow_limit = config.slow_call_duration
        self.admit = (config.half_open_permits, ttl_ms, int(config.trial_wait * 1000))
        self.peek = (config.half_open_permits,)
        self.record = (
            rule.consecutive_failures or 0,
            *(rule.failure_ratio or off),
            *(rule.slow_ratio or off),
            config.window * (1000 if config.window_type == "time" else 1),
            0 if config.window_type == "count" else 1,
            config.minimum_calls,
            int(config.reset_timeout * 1000),
            config.reset_backoff,
            int(config.max_reset_timeout * 1000),
            config.half_open_permits,
            ttl_ms,
        )
        self.control_tail = (int(config.reset_timeout * 1000), ttl_ms)

    def outcome(self, ticket: int, outcome: Outcome, duration: float) -> tuple[object, ...]:
        """The arguments of one recorded outcome, after the time."""
        limit = self.slow_limit
        slow = int(limit is not None and duration >= limit and outcome is not Outcome.IGNORED)
        return (ticket, int(outcome), slow, *self.record)


def admitted(reply: list[int]) -> tuple[int, State, float | None, Transition | None]:
    """The admit script's reply: ticket (or ``REJECTED``), state, retry after, transition."""
    ticket, state, retry_ms, old, reason = (int(x) for x in reply)
    new = STATES_BY_CODE[state]
    moved = None if old < 0 else Transition(STATES_BY_CODE[old], new, REASONS_BY_CODE[reason])
    return (
        ticket if ticket >= 0 else REJECTED,
        new,
        None if retry_ms < 0 else retry_ms / 1000,
        moved,
    )


def recorded(reply: list[int]) -> tuple[bool, Transition | None]:
    """The record script's reply: whether the outcome counted, and the transition if any."""
    counted, old, new, reason = (int(x) for x in reply)
    if new < 0:
        return bool(counted), None
    return bool(counted), Transition(
        STATES_BY_CODE[old], STATES_BY_CODE[new], REASONS_BY_CODE[reason]
    )
