-- POST /api/confirm for the bookings that book.lua makes on a group's first event (hot-hold): the payment
-- backend's stream, each booking confirmed shortly after it was held. book.lua's thread t books
-- u-<t>-1, u-<t>-2, ...; this script's thread j (one connection each) confirms those of booking thread
-- ((j - 1) % booking_threads) + 1, every `stride`-th from the ((j - 1) // booking_threads + 1)-th, so that
-- booking_threads * stride threads share the work without two of them confirming the same booking.
-- A 409 (no_hold: not booked yet) is tried again after <pause_ms>; a 200 moves on to the next.
-- wrk ... -s confirm.lua <url> -- <group> <booking_threads> <stride> <pause_ms>
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local json_headers = { ["Content-Type"] = "application/json" }

function init(args)
   event_id = common.group_event_id(tonumber(args[1]), 1)
   local booking_threads = tonumber(args[2])
   stride = tonumber(args[3])
   pause_ms = tonumber(args[4])
   booker = (thread_id - 1) % booking_threads + 1
   m = math.floor((thread_id - 1) / booking_threads) + 1
   wait_ms = 0
end

function delay()
   return wait_ms
end

function request()
   local user = string.format("u-%d-%d", booker, m)
   local body = string.format('{"eventId":"%s","userId":"%s","paymentReference":"pay-%s"}', event_id, user, user)
   return wrk.format("POST", "/api/confirm", json_headers, body)
end

function response(status, _headers, _body)
   if status == 200 then
      m = m + stride
      wait_ms = 0
   else
      wait_ms = pause_ms
   end
end
