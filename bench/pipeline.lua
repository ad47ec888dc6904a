-- wrk script: HTTP/1.1 pipelining. Every write carries DEPTH requests for the URL's path
-- (default 16); wrk counts each response, so Requests/sec is responses per second.
--   wrk -t1 -c64 -d10s -s bench/pipeline.lua http://127.0.0.1:18481/plaintext -- 16
local depth = 16
local pipelined

init = function(args)
   depth = tonumber(args[1]) or depth
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()   -- wrk.method, wrk.path and wrk.headers from the command line
   end
   pipelined = table.concat(r)
end

request = function()
   return pipelined
end
