-- wrk script for the soak: each connection's requests cycle through the paths given after "--".
--   wrk -s perf/soak/paths.lua http://127.0.0.1:PORT -- /json /6k.html
-- Headers given with -H (e.g. "Connection: close") go on every request.
local paths = {}
local i = 0

function init(args)
  for _, p in ipairs(args) do
    paths[#paths + 1] = p
  end
  if #paths == 0 then
    paths[1] = wrk.path
  end
end

function request()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
