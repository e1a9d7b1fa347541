-- wrk script for bench/run: the same chat completion POST against every target.
--
-- bench/run writes the JSON body once (so wrk and its curl smoke check send the same bytes) and
-- passes it in the environment:
--   BENCH_BODY_FILE  path of the request body (required)
--   BENCH_AUTH       bearer token (default sk-bench-master)
-- The Authorization header is what the gateway needs; the mock and the nginx hop ignore it, so
-- every target sees byte-for-byte the same request.

local path = os.getenv("BENCH_BODY_FILE")
if not path then
  error("BENCH_BODY_FILE is not set; run this through bench/run")
end
local f = assert(io.open(path, "rb"))
local body = f:read("*a"):gsub("%s+$", "")
f:close()

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_AUTH") or "sk-bench-master")
wrk.body = body
