-- wrk script: every request is a Bayeux publish POST.
-- Usage: wrk -t1 -c100 -d10s -s bench/wrk-publish.lua http://127.0.0.1:PORT/cometd
-- Environment:
--   BAYEUX_TOKEN    backend token, sent as ext.token in the message and as
--                   "Authorization: Bearer <token>" (bayeuxd backend publishing;
--                   unset = no token)
--   BAYEUX_CLIENTID clientId to put in the message (unset = none: backend publish)
--   BAYEUX_CHANNEL  channel (default /bench/0)
--   BAYEUX_PAYLOAD  filler bytes in data (default 64)
local token = os.getenv("BAYEUX_TOKEN")
local client_id = os.getenv("BAYEUX_CLIENTID")
local channel = os.getenv("BAYEUX_CHANNEL") or "/bench/0"
local payload = string.rep("x", tonumber(os.getenv("BAYEUX_PAYLOAD") or "64"))

local message = '{"channel":"' .. channel .. '","id":"1"'
if client_id then
  message = message .. ',"clientId":"' .. client_id .. '"'
end
if token then
  message = message .. ',"ext":{"token":"' .. token .. '"}'
end
message = message .. ',"data":{"t":0,"p":"' .. payload .. '"}}'

wrk.method = "POST"
wrk.body = "[" .. message .. "]"
wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- Count non-200 answers so a run that only collected errors is visible.
local non200 = 0
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  io.stderr:write(string.format("wrk-publish: %d requests, %d errors (status), %.0f req/s\n",
    summary.requests, summary.errors.status, summary.requests / (summary.duration / 1e6)))
end
