-- wrk script: POST a JSON body of BODY_SIZE bytes (or those of BODY_FILE,
-- below) to PATH_PREFIX<topic>, cycling TOPICS topics (bench.t0 ..
-- bench.tN-1) in the path, one request after the other on each keepalive
-- connection.
--
--   BODY_SIZE=1024 PATH_PREFIX=/publish/ TOPICS=100 TOPIC_PREFIX=bench.t \
--       wrk -t1 -c32 -d5s -s bench/pub.lua http://127.0.0.1:PORT
--
-- KEY_PREFIX=P (bench/redis.sh): every request also carries its own
-- `Idempotency-Key: P<thread>-<n>`, <thread> numbering wrk's threads from
-- 1 and <n> counting that thread's requests from 1, so no two requests of
-- a run share a key (a run's prefix keeps them apart from other runs').
--
-- BODY_FILE=F: the bodies are F's lines instead (without their newline),
-- sent in turn, each request the next (bench/gen-orders.pl writes such a
-- file: one compact JSON document a line); BODY_SIZE and JSON are then
-- not used, the Content-Type is application/json.
--
-- done() prints one machine-readable line:
--   RESULT requests=N duration_us=N non2xx=N sockerr=N p50_us=N p99_us=N

local size    = tonumber(os.getenv("BODY_SIZE") or "256")
local prefix  = os.getenv("PATH_PREFIX") or "/publish/"
local ntopics = tonumber(os.getenv("TOPICS") or "100")
local tprefix = os.getenv("TOPIC_PREFIX") or "bench.t"
local json    = (os.getenv("JSON") or "1") == "1"

local bodyfile = os.getenv("BODY_FILE") or ""

local bodies = {}
if bodyfile ~= "" then
  local f = assert(io.open(bodyfile, "rb"))
  for line in f:read("*a"):gmatch("[^\n]+") do
    bodies[#bodies + 1] = line
  end
  f:close()
  assert(#bodies > 0, "BODY_FILE " .. bodyfile .. " has no body")
  json = true
elseif json then
  -- {"seq":0,"pad":"xxxx..."} padded to exactly size bytes
  local head, tail = '{"seq":0,"pad":"', '"}'
  bodies[1] = head .. string.rep("x", size - #head - #tail) .. tail
else
  bodies[1] = string.rep("x", size)
end
local nbodies = #bodies
local body = bodies[1]
local b = 0

local headers = { ["Content-Type"] = json and "application/json"
                                          or "application/octet-stream" }
local paths = {}
for t = 0, ntopics - 1 do
  paths[t + 1] = prefix .. tprefix .. t
end

local i = 0
request = function()
  i = i % ntopics + 1
  return wrk.format("POST", paths[i], headers, body)
end

if nbodies > 1 then
  request = function()
    i = i % ntopics + 1
    b = b % nbodies + 1
    return wrk.format("POST", paths[i], headers, bodies[b])
  end
end

local keyprefix = os.getenv("KEY_PREFIX") or ""
if keyprefix ~= "" then
  -- setup() runs in the main Lua state, once per thread before it starts;
  -- `tid` becomes a global of that thread's own state
  local threads = 0
  setup = function(thread)
    threads = threads + 1
    thread:set("tid", threads)
  end

  local n = 0
  request = function()
    i = i % ntopics + 1
    n = n + 1
    b = b % nbodies + 1
    headers["Idempotency-Key"] = keyprefix .. (tid or 0) .. "-" .. n
    return wrk.format("POST", paths[i], headers, bodies[b])
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
