-- Replays pre-minted token requests with wrk, an independent C load generator:
--
--   keybound-load --mode code --requests N ... --emit-requests FILE
--   wrk -t T -c C -d SECONDS -s bench/wrk-replay.lua http://127.0.0.1:PORT -- FILE T
--
-- Every line of FILE (path, DPoP, Authorization or empty, form body; tab-separated) is sent
-- once: thread i takes lines i, i+T, ... A single-use code or refresh token cannot be sent
-- twice, so a connection of a thread that has sent all of its requests waits a second and
-- then sends `GET /wrk-replay-exhausted` (a 404, never counted); the thread stops once each of
-- its own requests is answered. wrk's own "Requests/sec" divides by -d and counts those
-- fillers; done() therefore prints its own line: 200s, every status, and the rate of 200s
-- from the first request to the last 200.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } wrk_replay_timespec;
  int clock_gettime(int clock, wrk_replay_timespec *ts);
]]
local ts = ffi.new("wrk_replay_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local path, dpop, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["DPoP"] = dpop,
      }
      if auth ~= "" then headers["Authorization"] = auth end
      reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
    end
    i = i + 1
  end
  filler = wrk.format("GET", "/wrk-replay-exhausted")
  sent, answered, ok = 0, 0, 0
  statuses = {}
end

function delay()
  if sent >= #reqs then return 1000 end
  return 0
end

function request()
  -- wrk calls request() once in the first thread before connecting, only to count the
  -- requests it returns (pipelining): that call must not use up a real request
  if id == 0 and not verified then
    verified = true
    return filler
  end
  sent = sent + 1
  if sent == 1 then first = now() end
  return reqs[sent] or filler
end

function response(status, headers, body)
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if status == 404 then return end
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
    last = now()
  end
  if answered >= #reqs then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local total_ok, t0, t1, all = 0, nil, nil, {}
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    local f, l = t:get("first"), t:get("last")
    if f and (t0 == nil or f < t0) then t0 = f end
    if l and (t1 == nil or l > t1) then t1 = l end
    for k, v in pairs(t:get("statuses") or {}) do all[k] = (all[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(all) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local seconds = (t0 and t1) and (t1 - t0) or 0
  io.write(string.format(
    'wrk-replay {"ok":%d,"seconds":%.3f,"rps":%.1f,"statuses":{%s},"p50_ms":%.2f,"p99_ms":%.2f}\n',
    total_ok, seconds, seconds > 0 and total_ok / seconds or 0, table.concat(parts, ","),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
