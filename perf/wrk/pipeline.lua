-- wrk script: 16 pipelined GET requests per write (the TechEmpower plaintext shape).
init = function(args)
  local r = {}
  for i = 1, 16 do
    r[i] = wrk.format(nil, wrk.path)
  end
  req = table.concat(r)
end

request = function()
  return req
end
