-- wrk script: POST /v1/answer with the bodies in $BODIES, one per line.
-- Each connection thread walks its own stride of the list, starting at
-- $START, so in the unique mix no question is sent twice.
-- With $CLIENTS = N > 0, each request names one of N shoppers (10.x.y.z, in turn) in
-- X-Forwarded-For (the server must trust the sender as a proxy): rate
-- limits then count N shoppers, not one (scripts/loadtest/storage.sh).
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local start = tonumber(os.getenv("START") or "0")
local clients = tonumber(os.getenv("CLIENTS") or "0")
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  n = 0
  stride = tonumber(os.getenv("WRK_THREADS") or "1")
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  local i = (start + (tid or 0) + n * stride) % #bodies + 1
  n = n + 1
  if clients > 0 then
    local c = (n + (tid or 0) * 7919) % clients
    local headers = {
      ["Content-Type"] = "application/json",
      ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(c / 65536) % 256, math.floor(c / 256) % 256, c % 256),
    }
    return wrk.format(nil, "/v1/answer", headers, bodies[i])
  end
  return wrk.format(nil, "/v1/answer", nil, bodies[i])
end
