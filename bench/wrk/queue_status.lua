-- GET /api/booking-status/<event>/w<i> at a paced rate, i drawn uniformly from first..last: waiting
-- users polling their place in a long queue (bench/queue/seed.sql queues user w<i> at position i),
-- beside the hot load. One run per band of positions, so that the report can set them side by side.
-- wrk ... -s queue_status.lua <url> -- <event id> <pause_ms> <first> <last>
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   prefix = "/api/booking-status/" .. args[1] .. "/w"
   pause_ms = tonumber(args[2])
   first, last = tonumber(args[3]), tonumber(args[4])
   math.randomseed(thread_id * 7919 + first)
end

function delay()
   return pause_ms
end

function request()
   return wrk.format("GET", prefix .. math.random(first, last))
end
