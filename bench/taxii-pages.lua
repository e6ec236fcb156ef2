-- wrk script: GET objects pages of 100 starting at random objects of the collection, so every
-- request reads a different page (no cache or hot page helps). PAGES_STARTS names a file with
-- one added_after per object (its date_added minus one microsecond, microseconds since the
-- epoch; bench/taxii-load.sh writes it): a page starts at an object drawn uniformly. (A random
-- time between the first and the last date_added would not do: objects arrive in batches whose
-- date_added values bunch, so most random times fall between batches and their pages start at
-- a batch's first object: a quarter of the collection read over and over.)
-- RATE_PER_THREAD paces the requests (bench/taxii-pace.lua).
-- PAGES_QUERY adds filters (e.g. "&match%5Btype%5D=indicator").
-- PAGES_FOLLOW=1: clients paging through the collection: each page's X-TAXII-Date-Added-Last
-- becomes the added_after of a next request (TAXII 2.1 section 3.4.2; by whichever connection
-- sends next: wrk does not say which request a response answers, so `next` cursors, bound to
-- their walk's first added_after, cannot be followed here), and a walk that ends starts again at
-- a random object: ~64 walks through the collection at once, every page a new one.
dofile("bench/taxii-pace.lua")
local extra = os.getenv("PAGES_QUERY") or ""
local follow = os.getenv("PAGES_FOLLOW") == "1"
local follows, first_follow, last_follow = {}, 1, 0  -- a queue of added_after values to request
local starts = {}
local seeded = 0

function setup(thread)
  seeded = seeded + 1
  thread:set("seed", seeded)
end

function init(args)
  math.randomseed(seed * 7919)
  local path = os.getenv("PAGES_STARTS")
  local f = path and io.open(path, "r")
  if not f then error("taxii-pages.lua: set PAGES_STARTS to a file of page starts (bench/taxii-load.sh does)") end
  for line in f:lines() do starts[#starts + 1] = tonumber(line) end
  f:close()
  if #starts == 0 then error("taxii-pages.lua: " .. path .. " is empty") end
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
  if first_follow <= last_follow then
    local after = follows[first_follow]
    follows[first_follow] = nil
    first_follow = first_follow + 1
    return head .. after .. tail
  end
  local us = starts[math.random(#starts)]
  local secs = math.floor(us / 1000000)
  local p = prefix[secs]
  if not p then
    p = head .. os.date("!%Y-%m-%dT%H:%M:%S", secs)
    prefix[secs] = p
  end
  return p .. string.format(".%06dZ", us % 1000000) .. tail
end

if follow then
  function response(status, headers, body)
    if status ~= 200 or not body:find('^{"more":true') then return end
    for name, value in pairs(headers) do
      if name:lower() == "x-taxii-date-added-last" then
        last_follow = last_follow + 1
        follows[last_follow] = value
        return
      end
    end
  end
end
