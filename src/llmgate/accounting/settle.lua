-- Close one admission in one round trip: release its concurrency slots, replace its token
-- reservation with the real count (only while it is still inside the window), add its cost
-- to the spend counters, and append its usage event to the stream.
--
-- KEYS: per token scope (3 each): window zset, token hash, token sum; then the concurrency
--       zsets; then spend counters; then one soft-alert flag per spend counter; then the stream.
-- ARGV: admission id, real tokens, cost ('' when unknown), #token scopes, #concurrency scopes,
--       #spend counters, event JSON, then per spend counter: ttl s (-1: none), soft limit (-1).
-- Returns {per spend counter: spent after (string), 1 when this call crossed its soft limit}.
redis.replicate_commands()
local id, real, cost = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ntok, nconc, nspend = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
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
local out = {}
for j = 1, nspend do
  local key, flag = KEYS[base + j], KEYS[base + nspend + j]
  local ttl, soft = tonumber(ARGV[7 + (j - 1) * 2 + 1]), tonumber(ARGV[7 + (j - 1) * 2 + 2])
  local spent
  if cost ~= '' then
    spent = redis.call('INCRBYFLOAT', key, cost)
    if ttl >= 0 then redis.call('EXPIRE', key, ttl) end
  else
    spent = redis.call('GET', key) or '0'
  end
  local crossed = 0
  if soft >= 0 and tonumber(spent) >= soft then
    if redis.call('SET', flag, '1', 'NX', 'EX', ttl >= 0 and ttl or 315360000) then crossed = 1 end
  end
  out[#out + 1] = spent
  out[#out + 1] = crossed
end
redis.call('XADD', KEYS[base + 2 * nspend + 1], '*', 'e', ARGV[7])
return out
