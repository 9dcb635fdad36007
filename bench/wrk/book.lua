-- POST /api/book (or the floor's path) on one of a group's events picked at random, each request
-- as a new user booking 1..4 tickets: hot and sold-out are a group of one event, spread a group of many.
-- wrk ... -s book.lua <url> -- <group> <event_count> [path]
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   group = tonumber(args[1])
   event_count = tonumber(args[2])
   path = args[3] or "/api/book"
   math.randomseed(thread_id)
   n = 0
end

function request()
   n = n + 1
   local event_id = common.group_event_id(group, math.random(1, event_count))
   return common.post_booking(path, event_id, string.format("u-%d-%d", thread_id, n))
end
