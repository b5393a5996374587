"""The Lua scripts Redis runs for shared limits and budgets: each is one atomic step, so checks and takes across every
worker and instance never interleave.

Time is Redis's own (TIME), so instances with skewed clocks agree. Every key a script touches carries the same hash
tag (`{...}`): a script's keys sit in one slot, as Redis Cluster needs.

Rates are GCRA (the generic cell rate algorithm): one timestamp per limit, the theoretical arrival time (TAT). A
take of `cost` units moves TAT by cost x T (T = 60 / per-minute rate) and is refused when TAT would run more than
60 s (the burst: a minute's worth) ahead of now; the refusal says when it would pass. Calls in flight are a sorted
set of call ids scored by a lease expiry, so the slots of a process that died free themselves.
"""

from __future__ import annotations

from typing import Final

_PRELUDE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

-- GCRA: the new TAT, or nil and the seconds until `cost` would pass.
local function gcra_check(key, per_minute, cost)
  local interval = 60 / per_minute
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local over = new_tat - now - 60
  if over > 0 then return nil, over end
  return new_tat, 0
end

local function gcra_store(key, new_tat)
  redis.call('SET', key, string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
end

-- Calls in flight: true when a slot is free (expired leases are dropped first).
local function slot_free(key, max_calls)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key) < max_calls
end

-- Takes rate and slot limits all or none. Specs from ARGV starting at `at`: rpm, requests, tpm, tokens,
-- max_calls, lease_s (requests: 1 for a call, more for a lease). Keys from `k`: rpm key, tpm key, slots key.
-- Returns {0} or {1, reason, seconds}.
local function take_limits(k, at, call_id)
  local rpm, requests, tpm = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local tokens, max_calls, lease_s = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
  local rpm_tat, tpm_tat, wait
  if rpm > 0 and requests > 0 then
    rpm_tat, wait = gcra_check(KEYS[k], rpm, math.min(requests, rpm))
    if not rpm_tat then return {1, 'RATE', tostring(wait)} end
  end
  if tpm > 0 and tokens > 0 then
    tpm_tat, wait = gcra_check(KEYS[k + 1], tpm, math.min(tokens, tpm))
    if not tpm_tat then return {1, 'RATE', tostring(wait)} end
  end
  if max_calls > 0 and not slot_free(KEYS[k + 2], max_calls) then return {1, 'CONCURRENCY', '0.05'} end
  if rpm_tat then gcra_store(KEYS[k], rpm_tat) end
  if tpm_tat then gcra_store(KEYS[k + 1], tpm_tat) end
  if max_calls > 0 then
    redis.call('ZADD', KEYS[k + 2], now + lease_s, call_id)
    redis.call('PEXPIRE', KEYS[k + 2], math.ceil(lease_s * 1000))
  end
  return {0}
end

-- Gives back a call's slot and corrects its token take to what was used.
local function settle_limits(k, at, call_id)
  local tpm, reserved, used = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  if tpm > 0 and used ~= reserved then
    local tat = tonumber(redis.call('GET', KEYS[k]))
    if tat then
      local moved = tat + (used - math.min(reserved, tpm)) * 60 / tpm
      if moved > now then gcra_store(KEYS[k], moved) else redis.call('DEL', KEYS[k]) end
    end
  end
  redis.call('ZREM', KEYS[k + 1], call_id)
end

-- A call's budget reservation given back: `spec` is its accounts and amounts ("account|amount;" each). An account
-- gone from Redis (past its keep time, or evicted) is not made again: HINCRBYFLOAT would make one with a negative
-- `reserved`, no `spent` and no expiry, which the next admission would take for loaded counters.
local function give_back(spec)
  for account, amount in string.gmatch(spec, '([^|;]+)|([^;]+);') do
    if redis.call('EXISTS', account) == 1 then redis.call('HINCRBYFLOAT', account, 'reserved', -tonumber(amount)) end
  end
end

-- A cost added to the spend of the n budget accounts from KEYS[first], and each account's spent and reserved after
-- it. Only an account with counters takes the cost: one gone (past its keep time, or evicted) is loaded from the
-- ledger, which has the call, by the next admission; made here it would hold this call's cost alone, without an
-- expiry, and the next admission would take it for the period's spend.
local function charge(first, n, cost)
  local out = {}
  for i = 0, n - 1 do
    local account = KEYS[first + i]
    if cost > 0 and redis.call('HEXISTS', account, 'spent') == 1 then
      redis.call('HINCRBYFLOAT', account, 'spent', cost)
    end
    local got = redis.call('HMGET', account, 'spent', 'reserved')
    table.insert(out, got[1] or '0')
    table.insert(out, got[2] or '0')
  end
  return out
end
"""

ADMIT: Final = (
    _PRELUDE
    + """
-- A call's key limits and budget reservations, all or none.
-- KEYS: 1 rpm, 2 tpm, 3 slots, 4 reservations (zset by expiry), 5 reservation specs (hash), 6.. budget accounts.
-- ARGV: 1 call id, 2-7 limit specs (see take_limits), 8 estimate (USD), 9 n accounts, then per account its cap
-- (-1: none) and seconds to keep it (its period's end plus a day).
-- Returns {0, spent and reserved per account...}, {1, reason, seconds, account index}, or {2, missing indexes...}
-- when an account has no counters yet (the caller loads them from the ledger and asks again).
local call_id, estimate, n = ARGV[1], tonumber(ARGV[8]), tonumber(ARGV[9])

-- Reservations whose call outlived its lease (its process died): give them back, a few per call.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 16)) do
  local spec = redis.call('HGET', KEYS[5], id)
  if spec then give_back(spec) end
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZREM', KEYS[4], id)
end

local missing = {2}
local values = {}
for i = 1, n do
  local got = redis.call('HMGET', KEYS[5 + i], 'spent', 'reserved')
  if not got[1] then
    table.insert(missing, i)
  else
    local spent, reserved = tonumber(got[1]), tonumber(got[2] or '0')
    local cap = tonumber(ARGV[8 + 2 * i])
    if cap >= 0 and spent + reserved + estimate > cap then
      return {1, 'BUDGET', string.format('%.9f', spent), string.format('%.9f', reserved), i}
    end
    values[i] = {spent, reserved}
  end
end
if #missing > 1 then return missing end

local taken = take_limits(1, 2, call_id)
if taken[1] ~= 0 then return taken end

local out = {0}
if n > 0 and estimate > 0 then
  local spec = {}
  local lease_s = tonumber(ARGV[7])
  for i = 1, n do
    local account = KEYS[5 + i]
    redis.call('HINCRBYFLOAT', account, 'reserved', estimate)
    redis.call('EXPIRE', account, tonumber(ARGV[9 + 2 * i]))
    table.insert(spec, account .. '|' .. string.format('%.12g', estimate) .. ';')
  end
  redis.call('ZADD', KEYS[4], now + lease_s, call_id)
  redis.call('HSET', KEYS[5], call_id, table.concat(spec))
end
for i = 1, n do
  table.insert(out, string.format('%.9f', values[i][1]))
  table.insert(out, string.format('%.9f', values[i][2] + (estimate > 0 and estimate or 0)))
end
return out
"""
)

SETTLE: Final = (
    _PRELUDE
    + """
-- A call's end: its slot back, its token take corrected, its reservation replaced by its cost.
-- KEYS: 1 tpm, 2 slots, 3 reservations, 4 reservation specs, 5.. budget accounts.
-- ARGV: 1 call id, 2 tpm, 3 reserved tokens, 4 used tokens, 5 cost (USD), 6 n accounts.
-- Returns each account's spent and reserved after the call.
local call_id, cost, n = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[6])
settle_limits(1, 2, call_id)
local spec = redis.call('HGET', KEYS[4], call_id)
if spec then
  give_back(spec)
  redis.call('HDEL', KEYS[4], call_id)
  redis.call('ZREM', KEYS[3], call_id)
end
return charge(5, n, cost)
"""
)

TAKE: Final = (
    _PRELUDE
    + """
-- Limits alone (a provider's quota per attempt, a lease of a key's rate): KEYS 1 rpm, 2 tpm, 3 slots;
-- ARGV 1 call id, 2-7 limit specs. Returns {0} or {1, reason, seconds}.
return take_limits(1, 2, ARGV[1])
"""
)

RELEASE: Final = (
    _PRELUDE
    + """
-- KEYS 1 tpm, 2 slots; ARGV 1 call id, 2 tpm, 3 reserved tokens, 4 used tokens.
settle_limits(1, 2, ARGV[1])
return 0
"""
)

INIT_ACCOUNT: Final = """
-- An account's counters, from the ledger, unless another process made them first. KEYS 1 account;
-- ARGV 1 spent, 2 seconds to keep it.
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'reserved', '0')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""

SETTLE_SHARE: Final = (
    _PRELUDE
    + """
-- A share of a reservation settled (an item of a batch): the share taken off the reservation and its accounts, the
-- cost added to the spend of the accounts of the period the item ends in (those with counters: one without is loaded
-- from the ledger, which has the item, by the next admission).
-- KEYS: 1 reservations (zset), 2 reservation specs (hash), 3.. budget accounts now.
-- ARGV: 1 call id, 2 share (USD), 3 cost (USD), 4 n accounts. Returns each account's spent and reserved after it.
local call_id, share, cost, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spec = redis.call('HGET', KEYS[2], call_id)
if spec then
  local left = {}
  for account, amount in string.gmatch(spec, '([^|;]+)|([^;]+);') do
    local held = tonumber(amount)
    local give = math.min(share, held)
    -- An account past its keep time (a batch reserved in a period long gone) is not made again without an expiry.
    if redis.call('EXISTS', account) == 1 then redis.call('HINCRBYFLOAT', account, 'reserved', -give) end
    table.insert(left, account .. '|' .. string.format('%.12g', held - give) .. ';')
  end
  redis.call('HSET', KEYS[2], call_id, table.concat(left))
end
return charge(3, n, cost)
"""
)

RENEW: Final = """
-- A long reservation kept alive (a batch polled again): its expiry moved. KEYS 1 reservations (zset), 2 specs (hash);
-- ARGV 1 call id, 2 seconds. Returns 1, or 0 when there is no such reservation (reaped, or Redis restarted).
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# The writer of a route's query-type clusters (learning/clusters.py): KEYS[1] holds the writer's id with a lease of
# ARGV[2] ms, taken when free and renewed by its holder; 1 when ARGV[1] holds it now.
LEAD: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# Stores ARGV[2] in KEYS[2] only while ARGV[1] holds the lease in KEYS[1]: a writer whose lease lapsed never
# overwrites its successor's centers.
SAVE_IF_LEAD: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
