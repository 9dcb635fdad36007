-- POST /api/book on one given event, each request as a new user: a hot-event load against any
-- running instance, such as `make run` (README, "Performance").
-- wrk ... -s book_event.lua <url> -- <event id> [run tag, to keep users apart across runs]
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

function init(args)
   event_id = args[1]
   tag = args[2] or "run"
   n = 0
end

function request()
   n = n + 1
   return common.post("/api/book", event_id, string.format("%s-%d-%d", tag, thread_id, n))
end
