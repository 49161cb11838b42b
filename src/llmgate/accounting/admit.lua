-- Check and count every limit of one upstream attempt, all or nothing, in one round trip.
--
-- Windows are sliding logs over the last 60 s of Redis server time: a sorted set whose members
-- are "<admission id>:<reserved tokens>" scored by admission time (requests), and a running token
-- sum (tokens). Concurrency is a sorted set of admission ids scored by lease expiry, so a slot
-- held by a process that died frees itself when its lease runs out.
--
-- Redis 6.2 compatibility (the embedded server): no command here rewrites its own argv into a
-- longer one (INCRBYFLOAT, SET with EX/PX, GETEX, ...), and none takes a long argument list:
-- on Redis < 7.0.8 that combination corrupts the heap of the Lua argv cache (see settle.lua).
--
-- KEYS: per scope i (3 each): window zset, token sum, concurrency zset; then per budget j: its
--       spend counter (integer nano-USD).
-- ARGV: now_ms (0: use server TIME), admission id, estimated tokens, slot lease ms,
--       #scopes, #budgets, then per scope: mode (0: read for headers only, 1: count and report,
--       2: count, no headers), rpm, tpm, max concurrency (-1: none), then per budget: limit in
--       nano-USD.
-- Returns {1, per scope: requests in window, tokens in window, ms until the oldest request
--          leaves (0 for mode 2)} or {0, scope or budget index, kind, retry ms, spent nano-USD}.
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
local member = id .. ':' .. est

-- Money first: cheapest, and a spent budget answers before any window is touched.
for j = 1, nbudgets do
  local spent = tonumber(redis.call('GET', KEYS[nscopes * 3 + j]) or '0')
  if spent >= tonumber(ARGV[6 + nscopes * 4 + j]) then
    return {0, j - 1, 'budget', 0, spent}
  end
end

local function tokens_of(m)
  return tonumber(string.match(m, ':(%d+)$')) or 0
end

local function purge(w, s)
  -- Entries scored <= cutoff left the window; give back their tokens. They are the lowest
  -- ranks, so they go with ZREMRANGEBYRANK (short argv), in chunks of 1000.
  while true do
    local old = redis.call('ZRANGEBYSCORE', w, '-inf', cutoff, 'LIMIT', 0, 1000)
    if #old == 0 then return end
    local freed = 0
    for k = 1, #old do freed = freed + tokens_of(old[k]) end
    redis.call('ZREMRANGEBYRANK', w, 0, #old - 1)
    if freed ~= 0 then redis.call('DECRBY', s, freed) end
    if #old < 1000 then return end
  end
end

local function tokens_retry_ms(w, sum, tpm)
  -- Walk from the oldest entry until enough tokens would have left the window.
  local need = sum + est - tpm
  local start = 0
  while true do
    local rows = redis.call('ZRANGE', w, start, start + 499, 'WITHSCORES')
    if #rows == 0 then return WINDOW end
    for k = 1, #rows, 2 do
      need = need - tokens_of(rows[k])
      if need <= 0 then return tonumber(rows[k + 1]) + WINDOW - now end
    end
    start = start + 500
  end
end

local counts, sums = {}, {}
for i = 0, nscopes - 1 do
  local w, s, c = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local a = 7 + i * 4
  local count_it = ARGV[a] ~= '0'
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local count, sum = 0, 0
  if rpm >= 0 or tpm >= 0 then
    purge(w, s)
    count = redis.call('ZCARD', w)
    sum = tonumber(redis.call('GET', s) or '0')
    if count_it and rpm >= 0 and count + 1 > rpm then
      if rpm == 0 then return {0, i, 'rpm', WINDOW, 0} end
      local row = redis.call('ZRANGE', w, count - rpm, count - rpm, 'WITHSCORES')
      return {0, i, 'rpm', tonumber(row[2]) + WINDOW - now, 0}
    end
    if count_it and tpm >= 0 and sum + est > tpm then
      if est > tpm then return {0, i, 'tpm', -1, 0} end
      return {0, i, 'tpm', tokens_retry_ms(w, sum, tpm), 0}
    end
  end
  if maxc >= 0 then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    if count_it and redis.call('ZCARD', c) >= maxc then
      return {0, i, 'concurrency', 1000, 0}
    end
  end
  counts[i + 1], sums[i + 1] = count, sum
end

-- Every check passed: count everywhere.
local out = {1}
for i = 0, nscopes - 1 do
  local w, s, c = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local a = 7 + i * 4
  local mode = ARGV[a]
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local count, sum = counts[i + 1], sums[i + 1]
  local windowed = rpm >= 0 or tpm >= 0
  if mode ~= '0' and windowed then
    redis.call('ZADD', w, now, member)
    redis.call('INCRBY', s, est)
    redis.call('PEXPIRE', w, WINDOW + 1000)  -- the log and its sum always live and die together
    redis.call('PEXPIRE', s, WINDOW + 1000)
    count, sum = count + 1, sum + est
  end
  if mode ~= '0' and maxc >= 0 then
    redis.call('ZADD', c, now + lease, id)
    redis.call('PEXPIRE', c, lease + 1000)
  end
  local reset = 0
  if mode ~= '2' and windowed then
    local oldest = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
    if #oldest > 0 then reset = tonumber(oldest[2]) + WINDOW - now end
  end
  out[#out + 1] = count
  out[#out + 1] = sum
  out[#out + 1] = reset
end
return out
