-- wrk script: GET objects pages of 100 starting at random points of the collection, so every
-- request reads a different page (no cache or hot page helps). The collection's range of
-- date_added (microseconds) comes from the environment: PAGES_FIRST_US and PAGES_LAST_US;
-- PAGES_QUERY adds filters (e.g. "&match%5Btype%5D=indicator").
local first = tonumber(os.getenv("PAGES_FIRST_US"))
local last = tonumber(os.getenv("PAGES_LAST_US"))
local extra = os.getenv("PAGES_QUERY") or ""
local seeded = 0

function setup(thread)
  seeded = seeded + 1
  thread:set("seed", seeded)
end

function init(args)
  math.randomseed(seed * 7919)
end

-- The request's text around its timestamp is built once (wrk.format per request costs the
-- load generator, which shares the cores with the server, as much as the timestamp).
local head, tail
local prefix = {}  -- whole seconds -> "GET <path>?limit=100&added_after=YYYY-MM-DDTHH:MM:SS"

function request()
  if not head then
    local t = wrk.format("GET", wrk.path .. "?limit=100&added_after=@@" .. extra)
    local at = t:find("@@", 1, true)
    head, tail = t:sub(1, at - 1), t:sub(at + 2)
  end
  local us = first + math.floor(math.random() * (last - first))
  local secs = math.floor(us / 1000000)
  local p = prefix[secs]
  if not p then
    p = head .. os.date("!%Y-%m-%dT%H:%M:%S", secs)
    prefix[secs] = p
  end
  return p .. string.format(".%06dZ", us % 1000000) .. tail
end
