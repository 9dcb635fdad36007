-- GET /api/status/<event_id> at a paced rate (each connection waits <pause_ms> between reads),
-- beside the hot load, to see what a reader suffers while bookings queue on the event lock.
-- wrk ... -s status.lua <url> -- <group> <pause_ms>  (the group's first event)
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   request_bytes = wrk.format("GET", "/api/status/" .. common.group_event_id(tonumber(args[1]), 1))
   pause_ms = tonumber(args[2])
end

function delay()
   return pause_ms
end

function request()
   return request_bytes
end
