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
from ._shared_core import Report, Verdict

__all__ = [
    "BREAKER_ADMIT",
    "BREAKER_CONTROL",
    "BREAKER_PEEK",
    "BREAKER_RECORD",
    "BUCKET_GIVE_BACK",
    "BUCKET_TAKE",
    "FLEET_EXCHANGE",
    "LEASE_TAKE",
    "BreakerArgs",
    "FleetArgs",
    "admitted",
    "recorded",
    "verdict",
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


# -- the batched modes: one exchange per replica and interval ------------------------------

# The fleet's breaker is one hash (``:fleet``): ``st`` ``gen`` ``ou`` ``to`` ``cf`` as
# above, ``hp`` trial permits granted this round, ``hs`` trial successes, ``rs`` the reason
# of the last transition, ``xp`` when the TTL was last renewed, and 20 time buckets of
# outcomes (``e``/``c``/``f``/``s`` + slot: epoch, calls, failures, slow). A count window
# is judged over the newest buckets that hold ``window`` calls; a time window over all
# buckets inside it.
#
# ARGV: now, calls, failures, slow, trailing, succeeded (0/1), trip reason (-1 none),
# generation of the trial results, trial successes, trial failures, permits wanted,
# permits returned, view state, view remaining ms, control state (-1 none), then
# FleetArgs.tail. Returns {state, generation, remaining ms (-1 forced open), granted,
# reason}.
FLEET_EXCHANGE: Final = (
    _constants()
    + _CLOCK
    + """
now = math.floor(now)
local key = KEYS[1]
local a = {}
for i = 2, #ARGV do a[i] = tonumber(ARGV[i]) end
local consecutive, fnum, fden, snum, sden = a[16], a[17], a[18], a[19], a[20]
local window_type, window, width, minimum = a[21], a[22], a[23], a[24]
local base_to, backoff, max_to, permits, trial_wait, ttl = a[25], a[26], a[27], a[28], a[29], a[30]
local raw = redis.call('HGETALL', key)
local f = {}
for i = 1, #raw, 2 do f[raw[i]] = tonumber(raw[i + 1]) end
local st = f.st or CLOSED
local gen = f.gen or 0
local ou = f.ou or 0
local to = f.to or base_to
local cf = f.cf or 0
local hp = f.hp or 0
local hs = f.hs or 0
local rs = f.rs or R_NONE
local w = {}
if #raw == 0 then
  -- Lost (a restart without data) or new: start from this replica's view, so a breaker
  -- the fleet had open stays open.
  local view = a[13]
  if view == OPEN or view == HALF_OPEN then
    st, ou, rs = OPEN, now + a[14], R_STORE_UNAVAILABLE
  elseif view == FORCED_OPEN or view == FORCED_CLOSED then
    st, rs = view, R_MANUAL
  end
elseif st == CLOSED and gen == 0 and (a[13] == OPEN or a[13] == HALF_OPEN) then
  -- Rebuilt closed by a replica that knew nothing (one started during the outage), and
  -- now one that saw the fleet open: no verdict ever closed it, so it opens again.
  st, ou, rs = OPEN, now + a[14], R_STORE_UNAVAILABLE
end
local function move(new, reason)
  gen, st, rs, cf, hp, hs = gen + 1, new, reason, 0, 0, 0
  for s = 0, 19 do
    if f['e' .. s] then w['e' .. s] = -1 end
  end
end
local function open(timeout, reason)
  to = math.floor(timeout)
  ou = now + to
  move(OPEN, reason)
end
local control = a[15]
local granted = 0
if control >= 0 then
  if control == CLOSED then
    to = base_to
    move(CLOSED, R_MANUAL)
  elseif st ~= control then
    move(control, R_MANUAL)
  end
else
  if st == CLOSED then
    local index = math.floor(now / width)
    if a[2] > 0 then
      local slot = index % 20
      local e, c, fl, sl = 'e' .. slot, 'c' .. slot, 'f' .. slot, 's' .. slot
      if f[e] ~= index then f[e], f[c], f[fl], f[sl] = index, 0, 0, 0 end
      f[c], f[fl], f[sl] = f[c] + a[2], f[fl] + a[3], f[sl] + a[4]
      w[e], w[c], w[fl], w[sl] = f[e], f[c], f[fl], f[sl]
      if a[6] == 1 then cf = a[5] else cf = cf + a[3] end
    end
    local calls, failures, slows = 0, 0, 0
    if fnum >= 0 or snum >= 0 then
      -- newest bucket first
      for back = 0, 19 do
        local s = (index - back) % 20
        if f['e' .. s] == index - back then
          calls = calls + f['c' .. s]
          failures = failures + f['f' .. s]
          slows = slows + f['s' .. s]
          if window_type == 0 and calls >= window then break end
        end
      end
    end
    if a[7] >= 0 then
      open(to, a[7])
    elseif consecutive > 0 and cf >= consecutive then
      open(to, R_CONSECUTIVE_FAILURES)
    elseif calls >= minimum and fnum >= 0 and failures * fden >= fnum * calls then
      open(to, R_FAILURE_RATE)
    elseif calls >= minimum and snum >= 0 and slows * sden >= snum * calls then
      open(to, R_SLOW_CALL_RATE)
    end
  elseif st == OPEN and now >= ou and a[11] > 0 then
    move(HALF_OPEN, R_RESET_TIMEOUT)
    ou = now + trial_wait
  end
  if st == HALF_OPEN then
    if a[8] == gen then
      hp = math.max(hp - a[12], 0)
      if a[10] > 0 then
        open(math.min(to * backoff, max_to), R_HALF_OPEN_FAILURE)
      else
        hs = hs + a[9]
        if hs >= permits then
          to = base_to
          move(CLOSED, R_HALF_OPEN_SUCCESS)
        end
      end
    end
  end
  if st == HALF_OPEN then
    if hp >= permits and now >= ou then
      -- No verdict for a whole round (a replica died mid-trial, or lost its reply):
      -- a new round under a new generation.
      move(HALF_OPEN, R_HALF_OPEN_MAX_WAIT)
      ou = now + trial_wait
    end
    if a[11] > 0 and hp < permits then
      granted = math.min(a[11], permits - hp)
      hp = hp + granted
    end
  end
end
local out = {'st', st, 'gen', gen, 'ou', ou, 'to', to, 'cf', cf, 'hp', hp, 'hs', hs,
             'rs', rs}
for field, value in pairs(w) do
  out[#out + 1] = field
  out[#out + 1] = value
end
-- The TTL is renewed a few times per TTL, not on every exchange: a command saved.
local renew = (f.xp or 0) + ttl / 4 <= now
if renew then
  out[#out + 1] = 'xp'
  out[#out + 1] = now
end
redis.call('HSET', key, unpack(out))
if renew then redis.call('PEXPIRE', key, ttl) end
local remaining = 0
if st == FORCED_OPEN then
  remaining = -1
elseif st == OPEN or st == HALF_OPEN then
  remaining = math.max(ou - now, 0)
end
return {st, gen, remaining, granted, rs}
"""
)

# The shared bucket of a leased limiter: one string ``"tokens stamp"`` (``:lease``).
# ARGV: now, rate (tokens per ms), burst, tokens asked, tokens returned, known (1: this
# replica leased before, so a missing bucket was lost and starts empty rather than
# full), ttl_ms. Returns {granted, ms until the bucket holds one more token (a string)}.
LEASE_TAKE: Final = (
    _CLOCK
    + """
local key = KEYS[1]
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local ask = tonumber(ARGV[4])
local tokens, stamp = burst, now
local v = redis.call('GET', key)
if v then
  local t, s = string.match(v, '(%S+) (%S+)')
  tokens, stamp = tonumber(t), tonumber(s)
elseif ARGV[6] == '1' then
  tokens = 0
end
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
tokens = math.min(burst, tokens + tonumber(ARGV[5]))
local granted = math.max(math.min(ask, math.floor(tokens)), 0)
tokens = tokens - granted
redis.call('SET', key, tostring(tokens) .. ' ' .. tostring(stamp), 'PX', ARGV[7])
return {granted, tostring(math.max(1 - tokens, 0) / rate)}
"""
)


class FleetArgs:
    """A batched breaker's script arguments after the report: built once from its config."""

    __slots__ = ("tail",)

    def __init__(self, config: BreakerConfig, ttl_ms: int) -> None:
        rule = config.rule
        off = (-1, -1)
        time_window = config.window_type == "time"
        # Time windows keep 20 buckets across the window; count windows one per second.
        width = max(1, int(config.window * 1000 / 20)) if time_window else 1000
        self.tail = (
            rule.consecutive_failures or 0,
            *(rule.failure_ratio or off),
            *(rule.slow_ratio or off),
            1 if time_window else 0,
            int(config.window * (1000 if time_window else 1)),
            width,
            config.minimum_calls,
            int(config.reset_timeout * 1000),
            config.reset_backoff,
            int(config.max_reset_timeout * 1000),
            config.half_open_permits,
            int(config.trial_wait * 1000),
            ttl_ms,
        )

    def exchange(self, report: Report) -> tuple[object, ...]:
        """The arguments of one exchange, after the time."""
        return (
            report.calls,
            report.failures,
            report.slow,
            report.trailing,
            int(report.succeeded),
            -1 if report.trip is None else report.trip.code,
            report.generation,
            report.trial_successes,
            report.trial_failures,
            report.want,
            report.returned,
            report.view.code,
            int(report.view_remaining * 1000),
            -1 if report.control is None else report.control.code,
            *self.tail,
        )


def verdict(reply: list[int]) -> Verdict:
    """The exchange script's reply."""
    state, generation, remaining_ms, granted, reason = (int(x) for x in reply)
    return Verdict(
        STATES_BY_CODE[state],
        generation,
        None if remaining_ms < 0 else remaining_ms / 1000,
        granted,
        REASONS_BY_CODE[reason],
    )
