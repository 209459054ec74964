-- (a) A page query: a filter on two user columns, ordered, a page of 50 (random filter values).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ratings = { "G", "PG", "PG-13", "R", "NC-17" }

function request()
    local filter = string.format("(rating eq '%s') and (year ge %d)",
        ratings[math.random(#ratings)], math.random(1920, 2015))
    filter = filter:gsub(" ", "%%20"):gsub("'", "%%27")
    local path = string.format("/tables/%s?$filter=%s&$orderby=id&$top=50", bench.table, filter)
    return wrk.format("GET", path)
end
