-- (c) An insert of a new item; the server generates the id.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ratings = { "G", "PG", "PG-13", "R", "NC-17" }
local counter = 0
-- wrk.format() replaces (not merges) wrk.headers when given headers: set them here instead.
wrk.headers["Content-Type"] = "application/json"

function request()
    counter = counter + 1
    local body = string.format(
        '{"title": "Inserted %d-%d", "year": %d, "rating": "%s", "duration": %d, ' ..
        '"bestPictureWinner": false}',
        thread_id or 0, counter, math.random(1920, 2020), ratings[math.random(#ratings)],
        math.random(60, 200))
    return wrk.format("POST", "/tables/" .. bench.table, nil, body)
end
