-- Book/cancel pairs on a sold-out event: each cancel frees a confirmed ticket, which goes to the
-- head of the waiting list once enough are free for it (strict FIFO); each book (1..4 tickets) joins
-- the back of the waiting list.
-- The users cancelled, c-<thread>-<k>, were booked by bench/database.py before the run, one pool
-- per wrk thread, so that every cancel hits a confirmed booking.
-- wrk ... -s churn.lua <url> -- <group>  (the group's one event)
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   event_id = common.group_event_id(tonumber(args[1]), 1)
   n = 0
   cancel_next = true
end

function request()
   if cancel_next then
      n = n + 1
      cancel_next = false
      return common.post("/api/cancel", event_id, string.format("c-%d-%d", thread_id, n))
   end
   cancel_next = true
   return common.post_booking("/api/book", event_id, string.format("u-%d-%d", thread_id, n))
end
