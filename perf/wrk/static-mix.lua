-- wrk script: the MegaPipe paper's nginx workload. Each request picks one of the mix's files
-- (sizes averaging 6.3 KiB) at random, and about 1 request in 2.3 says "Connection: close", so a
-- connection carries 2.3 requests on average (a geometric distribution) before wrk reconnects.
--   wrk -s static-mix.lua http://host:port -- <file count>
local keep = {}
local close = {}

init = function(args)
  local count = tonumber(args[1] or "20")
  for i = 1, count do
    local path = string.format("/mix/f%02d.html", i - 1)
    keep[i] = wrk.format("GET", path, {})
    close[i] = wrk.format("GET", path, { ["Connection"] = "close" })
  end
end

request = function()
  local i = math.random(#keep)
  if math.random() < 1 / 2.3 then
    return close[i]
  end
  return keep[i]
end
