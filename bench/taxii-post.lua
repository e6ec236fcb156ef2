-- wrk script: POST envelopes of 100 new indicators. Ids are random UUIDv4s as real STIX ids
-- are (random keys are what makes the store's indexes work: sequential ids would flatter it),
-- seeded per run and thread, so a second run on the same database posts no duplicates
-- (duplicates cost far less to store).
local threads = 0
local run = tonumber(os.getenv("POST_RUN_ID") or "0")

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(run * 64 + tid)
end

local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end

function request()
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"type":"indicator","spec_version":"2.1","id":"indicator--%s",' ..
      '"created":"2025-01-01T00:00:00.000Z","modified":"2025-01-01T00:00:00.000Z",' ..
      '"pattern":"[ipv4-addr:value = \'10.%d.%d.%d\']","pattern_type":"stix","valid_from":"2025-01-01T00:00:00Z"}',
      uuid4(), math.random(0, 255), math.random(0, 255), math.random(0, 255))
  end
  return wrk.format("POST", nil, nil, '{"objects":[' .. table.concat(parts, ",") .. ']}')
end
