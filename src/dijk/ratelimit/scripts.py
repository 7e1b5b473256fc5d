"""Lua scripts run atomically inside Redis: one round trip decides every rule of a request.

The arithmetic mirrors :mod:`dijk.ratelimit.algorithms` operation for operation. Time comes
from Redis (``TIME``), so gateway instances with skewed clocks still share one timeline.
Each bucket is a single key, so a script touches only the keys it is given.

``HIT``: ``KEYS`` are the buckets; ``ARGV[1]`` the cost, then four values per bucket:
algorithm code, limit, and two parameters (sliding window: window ms; gcra: interval ms and
burst). Either every bucket admits the request and all are counted, or none is counted.
Returns one string of space-separated integers: ``all_allowed now_ms``, then per bucket
``allowed remaining reset_ms retry_ms token``.

``REFUND``: gives back ``cost`` to a sliding-window bucket counted in window ``token``.
"""

from __future__ import annotations

HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cost = tonumber(ARGV[1])
local day_ms = 86400000

local results = {}
local writes = {}
local all = 1
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 4
  local algo = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local a = tonumber(ARGV[base + 3])
  local b = tonumber(ARGV[base + 4])
  local key = KEYS[i]
  local allowed, remaining, reset, retry, token = 0, 0, 0, 0, 0
  if algo == 1 then
    local data = redis.call('HMGET', key, 'w', 'c', 'p')
    local index = math.floor(now / a)
    local stored = tonumber(data[1]) or -1
    local c = tonumber(data[2]) or 0
    local p = tonumber(data[3]) or 0
    if stored ~= index then
      if stored == index - 1 then p = c else p = 0 end
      c = 0
    end
    local elapsed = (now - index * a) / a
    local used = p * (1 - elapsed) + c
    reset = (index + 1) * a - now
    token = index
    if used + cost <= limit then
      allowed = 1
      c = c + cost
      used = used + cost
      -- The expiry is set when a window starts (2 windows on: while it may still be the
      -- previous one); within a window only the count changes.
      if stored == index then
        writes[#writes + 1] = {4, key, c}
      else
        writes[#writes + 1] = {1, key, index, c, p, math.ceil(a * 2)}
      end
    elseif c + cost > limit then
      retry = reset + math.max(0, 1 - (limit - cost) / c) * a
    else
      retry = (1 - (limit - cost - c) / p - elapsed) * a
    end
    remaining = math.max(0, math.floor(limit - used))
  elseif algo == 2 then
    local tat = tonumber(redis.call('GET', key))
    local current = now
    if tat ~= nil and tat >= now then current = tat end
    local new_tat = current + a * cost
    local allow_at = new_tat - a * b
    if now >= allow_at then
      allowed = 1
      remaining = math.floor((now - allow_at) / a)
      reset = new_tat - now
      writes[#writes + 1] = {2, key, new_tat, math.max(1, math.ceil(new_tat - now))}
    else
      reset = current - now
      retry = allow_at - now
    end
  else
    local day = math.floor(now / day_ms)
    local period, ends
    if algo == 3 then
      period = day
      ends = (day + 1) * day_ms
    else
      -- Calendar arithmetic (H. Hinnant), defined only on the path that needs it.
      local function days_from_civil(y, m, d)
        if m <= 2 then y = y - 1 end
        local era = math.floor(y / 400)
        local yoe = y - era * 400
        local mp
        if m > 2 then mp = m - 3 else mp = m + 9 end
        local doy = math.floor((153 * mp + 2) / 5) + d - 1
        local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
        return era * 146097 + doe - 719468
      end

      local function civil_from_days(z)
        z = z + 719468
        local era = math.floor(z / 146097)
        local doe = z - era * 146097
        local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
          - math.floor(doe / 146096)) / 365)
        local y = yoe + era * 400
        local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
        local mp = math.floor((5 * doy + 2) / 153)
        local m
        if mp < 10 then m = mp + 3 else m = mp - 9 end
        if m <= 2 then y = y + 1 end
        return y, m
      end
      local y, m = civil_from_days(day)
      period = y * 12 + m - 1
      if m == 12 then ends = days_from_civil(y + 1, 1, 1) * day_ms
      else ends = days_from_civil(y, m + 1, 1) * day_ms end
    end
    local data = redis.call('HMGET', key, 'w', 'c')
    local c = 0
    if tonumber(data[1]) == period then c = tonumber(data[2]) or 0 end
    reset = ends - now
    token = period
    if c + cost <= limit then
      allowed = 1
      c = c + cost
      writes[#writes + 1] = {3, key, period, c, ends}
    else
      retry = reset
    end
    remaining = math.max(0, limit - c)
  end
  if allowed == 0 then
    all = 0
    retry = math.max(1, math.ceil(retry))
  end
  local n = #results
  results[n + 1] = allowed
  results[n + 2] = remaining
  results[n + 3] = math.ceil(reset)
  results[n + 4] = retry
  results[n + 5] = token
end
if all == 1 then
  for _, w in ipairs(writes) do
    if w[1] == 4 then
      redis.call('HSET', w[2], 'c', w[3])
    elseif w[1] == 1 then
      redis.call('HSET', w[2], 'w', w[3], 'c', w[4], 'p', w[5])
      redis.call('PEXPIRE', w[2], w[6])
    elseif w[1] == 2 then
      redis.call('SET', w[2], string.format('%.17g', w[3]), 'PX', w[4])
    else
      redis.call('HSET', w[2], 'w', w[3], 'c', w[4])
      redis.call('PEXPIREAT', w[2], math.ceil(w[5]) + 60000)
    end
  end
end
-- One bulk string, not an array: a client parses one reply element instead of dozens.
-- (Integers below 2^47 print exactly in Lua's number format.)
local out = {all, math.floor(now)}
for _, v in ipairs(results) do out[#out + 1] = v end
return table.concat(out, ' ')
"""

REFUND = """
local data = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local stored = tonumber(data[1])
if stored == nil then return 0 end
local token = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
if stored == token then
  redis.call('HSET', KEYS[1], 'c', math.max(0, (tonumber(data[2]) or 0) - cost))
elseif stored == token + 1 then
  redis.call('HSET', KEYS[1], 'p', math.max(0, (tonumber(data[3]) or 0) - cost))
end
return 1
"""
