-- POST /api/book as book.lua does, in AUTH_MODE=jwt: each request carries the next token of this
-- thread's pool (bench/identity.py wrote <tokens dir>/tokens-<thread>.txt, one token a line, each for
-- its own sub) and no userId, so the service books for the token's sub.
-- wrk ... -s book_jwt.lua <url> -- <group> <event_count> <tokens dir>
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   group = tonumber(args[1])
   event_count = tonumber(args[2])
   tokens = {}
   for line in io.lines(string.format("%s/tokens-%d.txt", args[3], thread_id)) do
      table.insert(tokens, line)
   end
   math.randomseed(thread_id)
   n = 0
end

function request()
   -- Past the end of the pool the users repeat: their bookings are refused (409) and count as errors.
   n = n % #tokens + 1
   local event_id = common.group_event_id(group, math.random(1, event_count))
   return common.post_bearer("/api/book", event_id, tokens[n])
end
