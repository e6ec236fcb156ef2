-- Pacing for the wrk scripts (loaded by them with dofile; bench/taxii-load.sh sets RATE).
-- Without RATE, wrk runs a closed loop: each of the 64 connections sends its next request as
-- soon as the answer arrives, so the server is always saturated and the latency is mostly the
-- queue (Little's law: mean latency = 64 connections / rate, whatever the server's speed).
-- With RATE_PER_THREAD=R (requests/s of one wrk thread), requests are sent on a schedule: the
-- n-th request of a thread goes at start + n/R, by whichever connection is free then (wrk calls
-- delay() before each request). That is the latency at a given load, e.g. the 10,000 requests/s
-- of issue #3's target. A connection free after its slot sends at once (delay 0): when the
-- server falls behind, the schedule does not wait for it, the requests it owes go as connections
-- free up, and their latency counts (wrk measures each from its send to its answer's end).
-- wrk's timers have a granularity of 1 ms: a request is sent within half a millisecond of its slot.
local rate = tonumber(os.getenv("RATE_PER_THREAD") or "")
if rate and rate > 0 then
  local ffi = require("ffi")
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } pace_timespec;
    int clock_gettime(int clock_id, pace_timespec* tp);
  ]])
  local ts = ffi.new("pace_timespec")
  local CLOCK_MONOTONIC = 1
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local next_at
  function delay()
    local now = now_ms()
    next_at = next_at or now
    local wait = next_at - now
    next_at = next_at + interval
    if wait <= 0.5 then return 0 end
    return math.floor(wait + 0.5)
  end
end
