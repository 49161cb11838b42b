-- wrk script: POST one chat completion per request and print the results as one JSON line.
-- Configured by environment: BENCH_BODY (the JSON body), BENCH_AUTH (bearer token, optional).
-- For streamed answers wrk's latency is the full-response time (until the last chunk).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  local p = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do
    p[#p + 1] = string.format('"%s":%d', tostring(q), latency:percentile(q))
  end
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"p":{%s}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(p, ",")))
end

-- BENCH_BODY_ALT: alternate between the two bodies, one request each (the soak mixes plain and streamed).
local alt = os.getenv("BENCH_BODY_ALT")
if alt and alt ~= "" then
  local bodies = {wrk.body, alt}
  local n = 0
  local prepared = {}
  for i, b in ipairs(bodies) do
    prepared[i] = wrk.format(nil, nil, nil, b)
  end
  function request()
    n = n + 1
    return prepared[(n % 2) + 1]
  end
end
