-- wrk script of the HTTP benchmark (bench/benchmark.py writes the files it reads, runs it, parses its last line).
--
--   wrk -t T -c C -d D --latency -s bench/load.lua URL -- MODE PATH T TAG TOKENS IDS BODY
--
-- MODE   get | post (no token) | get-token | post-token (Authorization: Bearer <single-use token>)
-- PATH   request path; a "{id}" in it is replaced by the ids of the IDS file, round robin
-- T      the thread count (each thread takes its own slice of the tokens: line n goes to thread n mod T,
--        so no token is used twice)
-- TAG    unique per run: the Idempotency-Key of a POST is TAG-thread-counter (fresh for every request)
-- TOKENS, IDS, BODY   files, or "-" for none
-- A thread that runs out of tokens sends the request without one (a 401, counted as an error) and counts it.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function lines(path, keep)
  local out = {}
  if path == "-" then return out end
  local n = 0
  for line in io.lines(path) do
    if line ~= "" then
      if keep(n) then table.insert(out, line) end
      n = n + 1
    end
  end
  return out
end

local function slurp(path)
  if path == "-" then return nil end
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  mode, path, nthreads, tag = args[1], args[2], tonumber(args[3]), args[4]
  tokens = lines(args[5], function(n) return n % nthreads == id end)
  ids = lines(args[6], function(n) return true end)
  body = slurp(args[7])
  next_token, next_id, sent, exhausted = 1, id % math.max(#ids, 1) + 1, 0, 0
end

function request()
  sent = sent + 1
  local headers = {}
  local target = path
  if #ids > 0 then
    target = path:gsub("{id}", ids[next_id])
    next_id = next_id % #ids + 1
  end
  if mode == "get-token" or mode == "post-token" then
    local token = tokens[next_token]
    if token then
      headers["Authorization"] = "Bearer " .. token
      next_token = next_token + 1
    else
      exhausted = exhausted + 1
    end
  end
  if mode == "post" or mode == "post-token" then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = string.format("%s-%d-%d", tag, id, sent)
    return wrk.format("POST", target, headers, body)
  end
  return wrk.format("GET", target, headers)
end

function done(summary, latency, requests)
  local exhausted_total = 0
  for _, t in ipairs(threads) do exhausted_total = exhausted_total + (t:get("exhausted") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "tokens_exhausted": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    exhausted_total, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
