"""The Lua scripts behind :class:`RedisStore`: one atomic round trip per decision.

Every script reads the time from the server (``TIME``), so replicas with skewed clocks
still agree on when a breaker opened and how full a bucket is. The breaker scripts
mirror :class:`._breaker_core.BreakerCore` step for step; state codes are the indexes of
``STATE_CODES`` and reason codes those of ``REASON_CODES``.

Breaker hash fields: ``st`` state, ``gen`` generation, ``ou`` open until (ms; while
half-open, when the trial round began), ``to`` current reset timeout (ms), ``cf``
consecutive failures, ``hi`` trials in flight, ``hs`` trial successes, ``wc``/``wf``/``ws``
count-window totals. The count window is a list
key (``:window``); the time window a hash of 20 buckets (``:buckets``).
"""

from __future__ import annotations

from typing import Final

from .._events import BreakerState

STATE_CODES: Final[tuple[BreakerState, ...]] = (
    "closed",
    "open",
    "half_open",
    "forced_open",
    "forced_closed",
)
REASON_CODES: Final = (
    "",
    "reset_timeout",
    "half_open_failure",
    "half_open_success",
    "consecutive_failures",
    "failure_rate",
    "slow_call_rate",
    "manual",
)

_COMMON: Final = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function move(gen, new)
  redis.call('HSET', key, 'st', new, 'gen', gen + 1, 'cf', 0, 'hi', 0, 'hs', 0,
             'wc', 0, 'wf', 0, 'ws', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
end
"""

# ARGV: permits, ttl_ms, reset_timeout_ms. Returns {ticket or -1, state, retry_after_ms,
# old state or -1}. While half-open, ``ou`` holds when the current trial round began.
BREAKER_ADMIT: Final = (
    _COMMON
    + """
local permits = tonumber(ARGV[1])
local h = redis.call('HMGET', key, 'st', 'gen', 'ou', 'hi', 'hs')
local st = tonumber(h[1]) or 0
local gen = tonumber(h[2]) or 0
if st == 0 or st == 4 then return {gen * 2, st, 0, -1} end
if st == 3 then return {-1, st, -1, -1} end
local old = -1
local hi = tonumber(h[4]) or 0
local hs = tonumber(h[5]) or 0
if st == 1 then
  local ou = tonumber(h[3]) or 0
  if now < ou then return {-1, st, ou - now, -1} end
  move(gen, 2)
  gen = gen + 1
  redis.call('HSET', key, 'ou', now)
  old = 1
  hi = 0
  hs = 0
elseif hi + hs >= permits then
  -- Trials unanswered for a whole reset timeout: a replica died (or lost its reply)
  -- mid-trial. Start a new trial round rather than stay half-open forever.
  if now - (tonumber(h[3]) or 0) < tonumber(ARGV[3]) then return {-1, 2, 0, -1} end
  gen = gen + 1
  redis.call('HSET', key, 'gen', gen, 'hi', 0, 'hs', 0, 'ou', now)
  hi = 0
  hs = 0
end
if hi + hs >= permits then return {-1, 2, 0, old} end
redis.call('HSET', key, 'hi', hi + 1)
redis.call('PEXPIRE', key, ARGV[2])
return {gen * 2 + 1, 2, 0, old}
"""
)

# ARGV: ticket, outcome (0 success, 1 failure, 2 ignored), slow (0/1), consecutive (0 =
# off), failure_rate (-1 = off), slow_rate (-1 = off), window (calls or ms), window_type
# (0 count, 1 time), minimum_calls, reset_timeout_ms, backoff, max_reset_ms, permits,
# ttl_ms. Returns {counted 0/1, old state, new state or -1, reason code}.
BREAKER_RECORD: Final = (
    _COMMON
    + """
local ticket = tonumber(ARGV[1])
local outcome = tonumber(ARGV[2])
local slow = tonumber(ARGV[3])
local consecutive = tonumber(ARGV[4])
local failure_rate = tonumber(ARGV[5])
local slow_rate = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local window_type = tonumber(ARGV[8])
local minimum = tonumber(ARGV[9])
local base_to = tonumber(ARGV[10])
local backoff = tonumber(ARGV[11])
local max_to = tonumber(ARGV[12])
local permits = tonumber(ARGV[13])
local ttl = ARGV[14]
local h = redis.call('HMGET', key, 'st', 'gen', 'to', 'cf', 'hi', 'hs')
local st = tonumber(h[1]) or 0
local gen = tonumber(h[2]) or 0
local to = tonumber(h[3]) or base_to
if math.floor(ticket / 2) ~= gen or st == 4 then return {0, st, -1, 0} end
local function open(timeout, reason)
  timeout = math.floor(timeout)
  redis.call('HSET', key, 'ou', now + timeout, 'to', timeout)
  move(gen, 1)
  redis.call('PEXPIRE', key, ttl)
  return {1, st, 1, reason}
end
if ticket % 2 == 1 then
  local hi = tonumber(h[5]) or 1
  redis.call('HSET', key, 'hi', math.max(hi - 1, 0))
  if outcome == 2 then return {1, st, -1, 0} end
  if outcome == 1 or (slow == 1 and slow_rate >= 0) then
    return open(math.min(to * backoff, max_to), 2)
  end
  local hs = (tonumber(h[6]) or 0) + 1
  if hs >= permits then
    redis.call('HSET', key, 'to', base_to)
    move(gen, 0)
    redis.call('PEXPIRE', key, ttl)
    return {1, st, 0, 3}
  end
  redis.call('HSET', key, 'hs', hs)
  return {1, st, -1, 0}
end
if outcome == 2 then return {1, st, -1, 0} end
local failure = 0
if outcome == 1 then failure = 1 end
local calls, failures, slows = 0, 0, 0
local counting = failure_rate >= 0 or slow_rate >= 0
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
if consecutive > 0 and cf >= consecutive then return open(to, 4) end
if counting and calls >= minimum then
  if failure_rate >= 0 and failures >= failure_rate * calls then return open(to, 5) end
  if slow_rate >= 0 and slows >= slow_rate * calls then return open(to, 6) end
end
return {1, st, -1, 0}
"""
)

# ARGV: action (0 reset, 3 forced open, 4 forced closed), reset_timeout_ms, ttl_ms.
# Returns {old state, new state or -1}.
BREAKER_CONTROL: Final = (
    _COMMON
    + """
local action = tonumber(ARGV[1])
local h = redis.call('HMGET', key, 'st', 'gen')
local st = tonumber(h[1]) or 0
local gen = tonumber(h[2]) or 0
if action == 0 then redis.call('HSET', key, 'to', ARGV[2]) end
redis.call('PEXPIRE', key, ARGV[3])
if st == action then
  if action == 0 then move(gen, 0) end
  return {st, -1}
end
move(gen, action)
return {st, action}
"""
)

# Returns {state, retry_after_ms (-1 when forced open)}.
BREAKER_PEEK: Final = (
    _COMMON
    + """
local h = redis.call('HMGET', key, 'st', 'ou')
local st = tonumber(h[1]) or 0
if st == 3 then return {st, -1} end
if st == 1 then return {st, math.max((tonumber(h[2]) or 0) - now, 0)} end
return {st, 0}
"""
)

# ARGV: rate (tokens per ms), burst, max_wait_ms, ttl_ms. Returns the wait in ms as a
# string (a Lua number would be truncated to an integer): 0 granted, > 0 reserved,
# < 0 refused (minus the time until the next token).
BUCKET_TAKE: Final = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local h = redis.call('HMGET', key, 'tk', 'ts')
local tokens = tonumber(h[1]) or burst
local stamp = tonumber(h[2]) or now
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
  if wait <= max_wait then tokens = tokens - 1 else wait = -wait end
end
redis.call('HSET', key, 'tk', tostring(tokens), 'ts', tostring(stamp))
redis.call('PEXPIRE', key, ARGV[4])
return tostring(wait)
"""
