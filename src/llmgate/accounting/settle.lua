-- Close one admission in one round trip: release its concurrency slots, replace its token
-- reservation with the real count (only while it is still inside the window), add its cost
-- to the spend counters, and append its usage event to the stream.
--
-- KEYS: per token scope (3 each): window zset, token hash, token sum; then the concurrency
--       zsets; then the spend counters; then one alert flag per watched counter; then the stream.
-- ARGV: admission id, real tokens, cost ('' when unknown), #token scopes, #concurrency scopes,
--       #spend counters, #watched, event JSON, then per spend counter: seconds to live (-1: forever),
--       then per watched counter: its 1-based spend index, soft limit (-1: none).
-- Returns per watched counter: {spent after (string), 1 when this call crossed the soft limit}.
redis.replicate_commands()
local id, real, cost = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ntok, nconc, nspend, nwatch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
for i = 0, ntok - 1 do
  local w, t, s = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  if redis.call('ZSCORE', w, id) then
    local reserved = tonumber(redis.call('HGET', t, id) or '0')
    if reserved ~= real then
      redis.call('HSET', t, id, real)
      redis.call('INCRBY', s, real - reserved)
    end
  end
end
local base = ntok * 3
for i = 1, nconc do redis.call('ZREM', KEYS[base + i], id) end
base = base + nconc
local spent = {}
for j = 1, nspend do
  local key = KEYS[base + j]
  if cost ~= '' then
    spent[j] = redis.call('INCRBYFLOAT', key, cost)
    local ttl = tonumber(ARGV[8 + j])
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
local out = {}
for k = 1, nwatch do
  local a = 8 + nspend + (k - 1) * 2
  local index, soft = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local value = spent[index] or redis.call('GET', KEYS[base + index]) or '0'
  local crossed = 0
  if soft >= 0 and tonumber(value) >= soft then
    local ttl = tonumber(ARGV[8 + index])
    local flag = KEYS[base + nspend + k]
    if redis.call('SET', flag, '1', 'NX') then
      crossed = 1
      if ttl > 0 then redis.call('EXPIRE', flag, ttl) end
    end
  end
  out[#out + 1] = value
  out[#out + 1] = crossed
end
redis.call('XADD', KEYS[base + nspend + nwatch + 1], '*', 'e', ARGV[8])
return out
