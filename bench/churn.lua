-- Mixed churn for the memory benchmark: 60 % POST /echo with bodies from
-- 64 B to 600 KB, the rest 16 KiB and 128 KiB files and /plaintext.
local sizes = {64, 1024, 8192, 65536, 262144, 614400}
local bodies = {}

function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    for i, n in ipairs(sizes) do
        bodies[i] = string.rep("x", n)
    end
end

function request()
    local r = math.random(100)
    if r <= 60 then
        local b = bodies[math.random(#bodies)]
        return wrk.format("POST", "/echo", {["Content-Type"] = "application/octet-stream"}, b)
    elseif r <= 75 then
        return wrk.format("GET", "/16k.bin")
    elseif r <= 90 then
        return wrk.format("GET", "/128k.bin")
    end
    return wrk.format("GET", "/plaintext")
end
