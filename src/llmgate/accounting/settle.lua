-- Close one admission in one round trip: release its concurrency slots, replace its token
-- reservation with the real count (only while it is still inside the window), add its cost
-- to the spend counters, and append its usage event to the stream.
--
-- Spend is integer nano-USD, added with INCRBY. Never INCRBYFLOAT (nor any other command that
-- rewrites its argv into a longer one: SET with EX/PX, GETEX, ...): on Redis < 7.0.8, which
-- includes the embedded 6.2 server, that shrinks the Lua argv cache behind its back after a
-- long command and corrupts the heap (redis/redis#11652; tests/accounting/test_embedded_redis_scripts.py).
--
-- KEYS: per token scope (2 each): window zset, token sum; then the concurrency zsets; then the
--       spend counters; then one alert flag per watched counter; then the stream.
-- ARGV: admission id, reserved tokens, real tokens, cost in nano-USD (-1: unknown), #token scopes,
--       #concurrency scopes, #spend counters, #watched, event JSON, then per spend counter: seconds
--       to live given when it is created (-1: forever), then per watched counter: its 1-based
--       spend index, soft limit in nano-USD (-1: none).
-- Returns per watched counter: {spent after (nano-USD), 1 when this call crossed the soft limit}.
redis.replicate_commands()
local id, est, real, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ntok, nconc, nspend, nwatch = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if real ~= est then
  local reserved, corrected = id .. ':' .. est, id .. ':' .. real
  for i = 0, ntok - 1 do
    local w, s = KEYS[i * 2 + 1], KEYS[i * 2 + 2]
    local score = redis.call('ZSCORE', w, reserved)
    if score then
      redis.call('ZREM', w, reserved)
      redis.call('ZADD', w, score, corrected)
      redis.call('INCRBY', s, real - est)
    end
  end
end
local base = ntok * 2
for i = 1, nconc do redis.call('ZREM', KEYS[base + i], id) end
base = base + nconc
local spent = {}
if cost > 0 then
  for j = 1, nspend do
    local key = KEYS[base + j]
    local value = redis.call('INCRBY', key, cost)
    spent[j] = value
    if value == cost then  -- just created: give it its period's lifetime, once
      local ttl = tonumber(ARGV[9 + j])
      if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    end
  end
end
local out = {}
for k = 1, nwatch do
  local a = 9 + nspend + (k - 1) * 2
  local index, soft = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local value = spent[index] or tonumber(redis.call('GET', KEYS[base + index]) or '0')
  local crossed = 0
  if soft >= 0 and value >= soft then
    local flag = KEYS[base + nspend + k]
    if redis.call('SET', flag, '1', 'NX') then
      crossed = 1
      local ttl = tonumber(ARGV[9 + index])
      if ttl > 0 then redis.call('EXPIRE', flag, ttl) end
    end
  end
  out[#out + 1] = value
  out[#out + 1] = crossed
end
redis.call('XADD', KEYS[base + nspend + nwatch + 1], '*', 'e', ARGV[9])
return out
