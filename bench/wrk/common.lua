-- Shared by the wrk scripts: thread ids, distinct user ids, JSON POSTs (with a bearer token or a userId),
-- and a JSON summary.
-- Each wrk thread has its own Lua state, so a per-thread counter needs no locking; the thread id
-- (1..threads, set in setup) keeps the user ids of different threads apart.
local common = {}

local thread_count = 0
local threads = {}

function common.setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count)
   table.insert(threads, thread)
end

local json_headers = { ["Content-Type"] = "application/json" }

function common.post(path, event_id, user_id)
   local body = string.format('{"eventId":"%s","userId":"%s"}', event_id, user_id)
   return wrk.format("POST", path, json_headers, body)
end

-- The bookings are of mixed sizes, as in a real sale: 1..MAX_QUANTITY tickets, uniformly at random
-- (the bench's events allow 10 per booking; bench/pgbench/book_*.sql draw the same way).
common.MAX_QUANTITY = 4

function common.post_booking(path, event_id, user_id)
   local body = string.format('{"eventId":"%s","userId":"%s","quantity":%d}', event_id, user_id,
                              math.random(1, common.MAX_QUANTITY))
   return wrk.format("POST", path, json_headers, body)
end

-- hot-types' ticket types, by position (bench/run.py TICKET_TYPES names the same).
common.TICKET_TYPES = { "stalls", "circle", "box" }

-- Booking for the token's sub (AUTH_MODE=jwt): no userId in the body.
function common.post_bearer(path, event_id, token)
   local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
   local body = string.format('{"eventId":"%s","quantity":%d}', event_id, math.random(1, common.MAX_QUANTITY))
   return wrk.format("POST", path, headers, body)
end

-- The event ids of a bench group: deterministic, so that pgbench can compute the same ones in SQL
-- (bench/database.py creates them; keep the two formats in step).
function common.group_event_id(group, k)
   return string.format("00000000-0000-4000-%04d-%012d", group, k)
end

local function percentiles(latency)
   local out = {}
   for _, p in ipairs({ 50, 90, 95, 99, 99.9 }) do
      out[tostring(p)] = latency:percentile(p) / 1000.0
   end
   out["max"] = latency.max / 1000.0
   out["mean"] = latency.mean / 1000.0
   return out
end

-- One line that bench/load.py picks out of wrk's output; latencies in milliseconds.
function common.done(summary, latency, _requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_s":%.6f,"errors":{"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d},"latency_ms":{',
      summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout))
   local parts = {}
   for name, value in pairs(percentiles(latency)) do
      table.insert(parts, string.format('"%s":%.3f', name, value))
   end
   io.write(table.concat(parts, ","), "}}\n")
end

return common
