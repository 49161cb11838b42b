-- Check and count every limit of one upstream attempt, all or nothing, in one round trip.
--
-- Windows are sliding logs over the last 60 s of Redis server time: a sorted set of admission
-- ids scored by admission time (requests), a hash id -> reserved tokens and a running token sum
-- (tokens). Concurrency is a sorted set of admission ids scored by lease expiry, so a slot held
-- by a process that died frees itself when its lease runs out.
--
-- KEYS: per scope i (4 each): window zset, token hash, token sum, concurrency zset;
--       then per budget j: its spend counter.
-- ARGV: now_ms (0: use server TIME), admission id, estimated tokens, slot lease ms,
--       #scopes, #budgets, then per scope: count?(1/0), rpm, tpm, max concurrency (-1: none),
--       then per budget: limit.
-- Returns {1, now, per scope: requests in window, tokens in window, ms to next request
--          freed, ms to next tokens freed} or {0, scope or budget index, kind, retry ms, spent}.
redis.replicate_commands()
local WINDOW = 60000
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id, est, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local nscopes, nbudgets = tonumber(ARGV[5]), tonumber(ARGV[6])
local cutoff = now - WINDOW

-- Money first: cheapest, and a spent budget answers before any window is touched.
for j = 1, nbudgets do
  local spent = tonumber(redis.call('GET', KEYS[nscopes * 4 + j]) or '0')
  local limit = tonumber(ARGV[6 + nscopes * 4 + j])
  if spent >= limit then
    return {0, j - 1, 'budget', 0, tostring(spent)}
  end
end

local function purge(w, t, s)
  -- Entries scored <= cutoff left the window; give back their tokens. Chunked: unpack has a
  -- stack limit, and after a burst thousands of entries can age out at once.
  while true do
    local old = redis.call('ZRANGEBYSCORE', w, '-inf', cutoff, 'LIMIT', 0, 1000)
    if #old == 0 then return end
    local freed = 0
    local amounts = redis.call('HMGET', t, unpack(old))
    for k = 1, #amounts do freed = freed + (tonumber(amounts[k]) or 0) end
    redis.call('HDEL', t, unpack(old))
    redis.call('ZREM', w, unpack(old))
    if freed ~= 0 then redis.call('DECRBY', s, freed) end
    if #old < 1000 then return end
  end
end

local function tokens_retry_ms(w, t, sum, tpm)
  -- Walk from the oldest entry until enough tokens would have left the window.
  local need = sum + est - tpm
  local start = 0
  while true do
    local rows = redis.call('ZRANGE', w, start, start + 499, 'WITHSCORES')
    if #rows == 0 then return WINDOW end
    local ids = {}
    for k = 1, #rows, 2 do ids[#ids + 1] = rows[k] end
    local amounts = redis.call('HMGET', t, unpack(ids))
    for k = 1, #ids do
      need = need - (tonumber(amounts[k]) or 0)
      if need <= 0 then return tonumber(rows[2 * k]) + WINDOW - now end
    end
    start = start + 500
  end
end

local counts, sums, next_req, next_tok = {}, {}, {}, {}
for i = 0, nscopes - 1 do
  local w, t, s, c = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  local a = 7 + i * 4
  local count_it = ARGV[a] == '1'
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local count, sum = 0, 0
  if rpm >= 0 or tpm >= 0 then
    purge(w, t, s)
    count = redis.call('ZCARD', w)
    sum = tonumber(redis.call('GET', s) or '0')
    if count_it and rpm >= 0 and count + 1 > rpm then
      if rpm == 0 then return {0, i, 'rpm', WINDOW, ''} end
      local row = redis.call('ZRANGE', w, count - rpm, count - rpm, 'WITHSCORES')
      return {0, i, 'rpm', tonumber(row[2]) + WINDOW - now, ''}
    end
    if count_it and tpm >= 0 and sum + est > tpm then
      if est > tpm then return {0, i, 'tpm', -1, ''} end
      return {0, i, 'tpm', tokens_retry_ms(w, t, sum, tpm), ''}
    end
  end
  if maxc >= 0 then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    if count_it and redis.call('ZCARD', c) >= maxc then
      return {0, i, 'concurrency', 1000, ''}
    end
  end
  counts[i + 1], sums[i + 1] = count, sum
end

-- Every check passed: count everywhere.
local out = {1, now}
for i = 0, nscopes - 1 do
  local w, t, s, c = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
  local a = 7 + i * 4
  local count_it = ARGV[a] == '1'
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local count, sum = counts[i + 1], sums[i + 1]
  if count_it and (rpm >= 0 or tpm >= 0) then
    redis.call('ZADD', w, now, id)
    redis.call('HSET', t, id, est)
    redis.call('INCRBY', s, est)
    redis.call('PEXPIRE', w, WINDOW + 1000)
    redis.call('PEXPIRE', t, WINDOW + 1000)
    redis.call('PEXPIRE', s, WINDOW + 1000)
    count, sum = count + 1, sum + est
  end
  if count_it and maxc >= 0 then
    redis.call('ZADD', c, now + lease, id)
    redis.call('PEXPIRE', c, lease + 1000)
  end
  local oldest = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
  local reset = 0
  if #oldest > 0 then reset = tonumber(oldest[2]) + WINDOW - now end
  out[#out + 1] = count
  out[#out + 1] = sum
  out[#out + 1] = reset
end
return out
