-- One wrk scenario, configured from the environment by bench/run.py.
--
--   BENCH_METHOD   GET or POST
--   BENCH_PATH     the path; "{t}" becomes this thread's value (below)
--   BENCH_VALUES   comma-separated values: wrk thread n (one connection each) gets value n
--   BENCH_TOKEN    bearer token ("" for none)
--   BENCH_BODY     JSON body; "{t}" as in the path, "{n}" a counter unique to the thread
--   BENCH_FOLLOW   "1": follow each response's "next" link, starting over when it is null
--                  (walks every page of a list; needs one connection per thread)
--   BENCH_OUT      file that done() writes the summary to, as JSON
--
-- Every non-2xx answer counts as an error (wrk's summary.errors.status).

local method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN") or ""
local body_template = os.getenv("BENCH_BODY")
local follow = os.getenv("BENCH_FOLLOW") == "1"
local path_template = os.getenv("BENCH_PATH") or "/"
local values = {}
for value in string.gmatch(os.getenv("BENCH_VALUES") or "", "[^,]+") do
   table.insert(values, value)
end

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("index", counter)
end

local first_path, next_path, value, sent = nil, nil, "", 0

function init(args)
   if #values > 0 then
      value = values[((index or 1) - 1) % #values + 1]
   end
   first_path = string.gsub(path_template, "{t}", value)
   next_path = first_path
end

local function headers()
   local h = {["Accept"] = "application/json"}
   if token ~= "" then
      h["Authorization"] = "Bearer " .. token
   end
   if body_template then
      h["Content-Type"] = "application/json"
   end
   return h
end

function request()
   sent = sent + 1
   local body = nil
   if body_template then
      body = string.gsub(body_template, "{t}", value)
      body = string.gsub(body, "{n}", (index or 1) .. "-" .. sent)
   end
   return wrk.format(method, next_path, headers(), body)
end

if follow then
   function response(status, hdrs, body)
      local link = string.match(body, '"next":"([^"]*)"')
      if status == 200 and link then
         next_path = string.gsub(link, "^https?://[^/]+", "")
      else
         next_path = first_path
      end
   end
end

function done(summary, latency, requests)
   local out = io.open(os.getenv("BENCH_OUT"), "w")
   out:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "errors_status": %d, ' ..
      '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_timeout": %d, ' ..
      '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, summary.errors.status,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99),
      latency.mean, latency.max))
   out:close()
end
