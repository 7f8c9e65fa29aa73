-- wrk script: POST /v1/answer with the bodies in $BODIES, one per line.
-- Each connection thread walks its own stride of the list, starting at
-- $START, so in the unique mix no question is sent twice.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local start = tonumber(os.getenv("START") or "0")
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
  return wrk.format(nil, "/v1/answer", nil, bodies[i])
end
