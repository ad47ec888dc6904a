-- Random files of a static site for the memory benchmarks: GET /site/fNNN.bin
-- with NNN uniform over 0 .. FILES-1 (FILES from the environment, default 200).
local files = tonumber(os.getenv("FILES") or "200")

function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
    return wrk.format("GET", string.format("/site/f%03d.bin", math.random(0, files - 1)))
end
