-- wrk script for bench/load.py: one endpoint per run, configured through the environment.
--
--   BENCH_TOKEN   JWT sent as "Authorization: Bearer <token>"
--   BENCH_METHOD  GET | POST | PATCH | ...
--   BENCH_PATHS   file with one request path per line; each request picks one at random
--   BENCH_BODIES  optional file with one JSON body per line; "{n}" becomes a number unique in the run
--                 (thread id + per-thread counter), so creates never collide
--   BENCH_SEED    random seed (each thread adds its id): runs are repeatable
--   BENCH_ACCEPT_ENCODING  sent as Accept-Encoding when not empty (a browser dashboard always sends one)
--   BENCH_HEADERS  extra "Name: value" headers, one per line (e.g. If-None-Match)
--   BENCH_STATUSES "1": count every HTTP status and keep one error body (costs load-generator CPU)
--
-- done() prints one line "BENCH_JSON {...}" with requests, latency percentiles (microseconds), error
-- counters and a histogram of the HTTP statuses seen, which load.py parses.

local threads = {}

local function read_lines(path)
  local lines = {}
  if path == nil or path == "" then return lines end
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if line ~= "" then lines[#lines + 1] = line end
  end
  f:close()
  return lines
end

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local method, paths, bodies
local counter = 0
statuses = {}
error_sample = ""

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  paths = read_lines(os.getenv("BENCH_PATHS"))
  bodies = read_lines(os.getenv("BENCH_BODIES"))
  assert(#paths > 0, "BENCH_PATHS has no path")
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1") + (tid or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
  if #bodies > 0 then wrk.headers["Content-Type"] = "application/json" end
  local encoding = os.getenv("BENCH_ACCEPT_ENCODING") or ""
  if encoding ~= "" then wrk.headers["Accept-Encoding"] = encoding end
  for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
end

function request()
  local path = paths[math.random(#paths)]
  local body = nil
  if #bodies > 0 then
    counter = counter + 1
    local n = string.format("%d%07d", tid or 0, counter)
    body = string.gsub(bodies[math.random(#bodies)], "{n}", n)
  end
  return wrk.format(method, path, nil, body)
end

-- A response() hook makes wrk hand every body to Lua (a copy per response: costly for the 9 MB compat
-- board and CPU taken from the server on a small machine), so the per-status histogram is opt-in
-- (BENCH_STATUSES=1). Without it, non-2xx/3xx responses are still counted in errors.status.
if os.getenv("BENCH_STATUSES") == "1" then
  function response(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    if status >= 400 and error_sample == "" then
      error_sample = key .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local merged, sample = {}, ""
  for _, thread in ipairs(threads) do
    local st = thread:get("statuses") or {}
    for k, v in pairs(st) do merged[k] = (merged[k] or 0) + v end
    local es = thread:get("error_sample")
    if sample == "" and es ~= nil then sample = es end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"mean_us":%.1f,"p50_us":%d,"p90_us":%d,' ..
    '"p95_us":%d,"p99_us":%d,"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"statuses":{%s},"error_sample":%s}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ","), json_string(sample)))
end
