-- hot-types: POST /api/book on a group's event (three ticket types, bench/database.py), each request as a
-- new user booking 1..3 items: that many distinct types, starting at one drawn at random, 1..2 tickets of
-- each (bench/pgbench/book_types_*.sql draw the same way).
-- wrk ... -s book_types.lua <url> -- <group> <event_count>
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local json_headers = { ["Content-Type"] = "application/json" }

function init(args)
   group = tonumber(args[1])
   event_count = tonumber(args[2])
   math.randomseed(thread_id)
   n = 0
end

local function items()
   local count, first = math.random(1, #common.TICKET_TYPES), math.random(0, #common.TICKET_TYPES - 1)
   local parts = {}
   for i = 0, count - 1 do
      local code = common.TICKET_TYPES[(first + i) % #common.TICKET_TYPES + 1]
      table.insert(parts, string.format('{"ticketType":"%s","quantity":%d}', code, math.random(1, 2)))
   end
   return "[" .. table.concat(parts, ",") .. "]"
end

function request()
   n = n + 1
   local event_id = common.group_event_id(group, math.random(1, event_count))
   local body = string.format('{"eventId":"%s","userId":"u-%d-%d","items":%s}', event_id, thread_id, n, items())
   return wrk.format("POST", "/api/book", json_headers, body)
end
