-- wrk script for pixring's benchmark (loadtest/wrk.py runs it).
--
-- Replays the request targets listed one per line in the file named by the first script
-- argument (wrk ... -s replay.lua URL -- FILE), in file order, round and round. Requests are
-- formatted once in init() so the load generator spends its time on sockets, not strings.
-- At the end it writes one line, "PIXRING-WRK " followed by a JSON object, which is the only
-- output loadtest/wrk.py reads (wrk's human table is kept for the log, never parsed).

local requests_by_index = {}
local count = 0
local cursor = 0

function init(args)
  local path = args[1]
  if path == nil then
    error("replay.lua: pass the targets file after --")
  end
  for line in io.lines(path) do
    if #line > 0 then
      count = count + 1
      requests_by_index[count] = wrk.format("GET", line)
    end
  end
  if count == 0 then
    error("replay.lua: no targets in " .. path)
  end
end

function request()
  cursor = cursor + 1
  if cursor > count then
    cursor = 1
  end
  return requests_by_index[cursor]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'PIXRING-WRK {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"bad_status": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status))
end
