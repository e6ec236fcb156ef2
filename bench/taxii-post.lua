-- wrk script: POST envelopes of 100 new indicators (unique ids per thread and request).
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"type":"indicator","spec_version":"2.1","id":"indicator--%08x-0000-4000-8000-%012x",' ..
      '"created":"2025-01-01T00:00:00.000Z","modified":"2025-01-01T00:00:00.000Z",' ..
      '"pattern":"[ipv4-addr:value = \'10.%d.%d.%d\']","pattern_type":"stix","valid_from":"2025-01-01T00:00:00Z"}',
      tid, counter * 1000 + i, tid, counter % 256, i)
  end
  return wrk.format("POST", nil, nil, '{"objects":[' .. table.concat(parts, ",") .. ']}')
end
